//go:build !unix

package sqlite

import "time"

// cpuTime is not available here: the benchmarks report no CPU figures.
func cpuTime() (time.Duration, bool) { return 0, false }

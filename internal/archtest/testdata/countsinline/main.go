// Command countsinline is a deliberately broken cmd package for
// TestCmd_CountsNothingBroken: it moves metrics inline.
package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

func main() {
	var m *telemetry.Metrics
	m.Ledger()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	c.Inc()
}

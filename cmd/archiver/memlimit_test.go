package main

import (
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// TestMemoryLimit: the limit is the upload buffers the configuration lets
// the process hold in memory, plus the fixed overhead.
func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want int64
	}{
		{"dir sink", func(c *config.Config) { c.Sink.Type = config.SinkDir }, 24 * mib},
		{"s3, spooled buffers", func(c *config.Config) { c.Sink.Type = config.SinkS3 }, (16 + 24) * mib},
		{"s3, spooled, 64 MiB in memory", func(c *config.Config) {
			c.Sink.Type, c.Sink.S3.MaxBufferedBytes = config.SinkS3, 64*mib
		}, (64 + 24) * mib},
		{"s3, memory buffers", func(c *config.Config) {
			c.Sink.Type, c.Sink.S3.PartBuffers, c.Sink.S3.MaxInflightBytes = config.SinkS3, config.PartBuffersMemory, 256*mib
		}, (256 + 24) * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.mod(cfg)
			if got := memoryLimit(cfg); got != tc.want {
				t.Errorf("memoryLimit = %d MiB, want %d MiB", got/mib, tc.want/mib)
			}
		})
	}
}

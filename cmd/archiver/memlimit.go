package main

import (
	"os"
	"runtime/debug"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// memoryOverhead is what the archiver needs besides its upload buffers:
// the runtime, the clients, the checkpoint, the items in flight.
const memoryOverhead = 24 << 20

// memoryLimit is the Go memory limit the archiver sets itself from cfg:
// the upload buffers it may hold in memory plus memoryOverhead. Without a
// limit the garbage collector lets the heap grow to twice what is live
// (GOGC=100), which with a few MiB of buffers churning doubles the
// resident set for nothing; with it, it collects sooner as the process
// nears the limit (a soft limit: it never fails an allocation, and the
// runtime caps the collector's CPU when the live heap is above it).
func memoryLimit(cfg *config.Config) int64 {
	buffers := int64(0)
	if cfg.Sink.Type == config.SinkS3 {
		buffers = int64(cfg.Sink.S3.MaxInflightBytes)
		if cfg.Sink.S3.PartBuffers == config.PartBuffersFile {
			buffers = int64(cfg.Sink.S3.MaxBufferedBytes)
		}
	}
	return buffers + memoryOverhead
}

// setMemoryLimit applies memoryLimit, unless GOMEMLIMIT says otherwise.
func setMemoryLimit(cfg *config.Config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryLimit(cfg))
}

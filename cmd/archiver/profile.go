package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling for benchmarks and support cases: with ARCHIVER_CPUPROFILE=FILE
// the process writes a CPU profile of its whole life to FILE, with
// ARCHIVER_MEMPROFILE=FILE a heap profile (allocations and what is live) at
// exit; read either with `go tool pprof -top archiver FILE`. Only the real
// process profiles (main), never a test's cli. docs/benchmarks.md shows the use.
const (
	envCPUProfile = "ARCHIVER_CPUPROFILE"
	envMemProfile = "ARCHIVER_MEMPROFILE"
)

// startProfiles starts what the environment asks for and returns the
// function that finishes the profiles; it reports its own failures on stderr
// and never stops the command.
func startProfiles() (stop func()) {
	var cpu *os.File
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "archiver: %s: %v\n", envCPUProfile, err)
		} else {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if path := os.Getenv(envMemProfile); path != "" {
			if err := writeHeapProfile(path); err != nil {
				fmt.Fprintf(os.Stderr, "archiver: %s: %v\n", envMemProfile, err)
			}
		}
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the live heap as of now
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

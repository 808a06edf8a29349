package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Build stamps, set by the release build (scripts/image.sh, the Dockerfile):
//
//	-ldflags "-X main.version=0.1.0 -X main.commit=<git sha> -X main.date=<RFC 3339 UTC>"
//
// A build without them (go install, go run) falls back to what the Go
// toolchain recorded (buildInfo).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildStamp is what "archiver version" prints.
type buildStamp struct {
	Version, Commit, Date, Go, Platform string
	Modified                            bool // built from a work tree with changes (vcs.modified)
}

// buildInfo fills what the ldflags left empty from the build information the
// toolchain embeds: the module version for go install …@vX, and
// vcs.revision, vcs.time and vcs.modified for a build in a git work tree
// (without -buildvcs=false).
func buildInfo(read func() (*debug.BuildInfo, bool)) buildStamp {
	s := buildStamp{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := read()
	if !ok {
		return s
	}
	s.Go = bi.GoVersion
	if s.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		s.Version = bi.Main.Version
	}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			if s.Commit == "" {
				s.Commit = kv.Value
			}
		case "vcs.time":
			if s.Date == "" {
				s.Date = kv.Value
			}
		case "vcs.modified":
			s.Modified = kv.Value == "true" && commit == ""
		}
	}
	return s
}

func printVersion(w io.Writer, s buildStamp) {
	c := s.Commit
	switch {
	case c == "":
		c = "unknown"
	case s.Modified:
		c += " (modified)"
	}
	d := s.Date
	if d == "" {
		d = "unknown"
	}
	fmt.Fprintf(w, "archiver %s\ncommit: %s\ndate: %s\ngo: %s %s\n", s.Version, c, d, s.Go, s.Platform)
}

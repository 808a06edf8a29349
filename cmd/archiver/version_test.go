package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfo(t *testing.T) {
	vcs := func(mainVersion string, kv ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/cec-archiver/cec-archiver", Version: mainVersion}}
			for i := 0; i+1 < len(kv); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
			}
			return bi, true
		}
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, c := range []struct {
		name                  string
		version, commit, date string // the ldflags
		read                  func() (*debug.BuildInfo, bool)
		want                  string
	}{
		{"ldflags win", "0.1.0", "0123abc", "2026-12-01T10:00:00Z",
			vcs("v0.0.9", "vcs.revision", "fff", "vcs.time", "2020-01-01T00:00:00Z", "vcs.modified", "true"),
			"archiver 0.1.0\ncommit: 0123abc\ndate: 2026-12-01T10:00:00Z\ngo: go1.26.0 " + platform + "\n"},
		{"go install @version", "dev", "", "", vcs("v0.2.0"),
			"archiver v0.2.0\ncommit: unknown\ndate: unknown\ngo: go1.26.0 " + platform + "\n"},
		{"git work tree", "dev", "", "",
			vcs("(devel)", "vcs.revision", "d4dc132", "vcs.time", "2026-11-30T08:00:00Z", "vcs.modified", "true"),
			"archiver dev\ncommit: d4dc132 (modified)\ndate: 2026-11-30T08:00:00Z\ngo: go1.26.0 " + platform + "\n"},
		{"no build info", "dev", "", "", func() (*debug.BuildInfo, bool) { return nil, false },
			"archiver dev\ncommit: unknown\ndate: unknown\ngo: " + runtime.Version() + " " + platform + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			version, commit, date = c.version, c.commit, c.date
			defer func() { version, commit, date = "dev", "", "" }()
			var b bytes.Buffer
			printVersion(&b, buildInfo(c.read))
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}

func TestCmdVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out, errOut bytes.Buffer
		c := newCLI(&out, &errOut)
		if code := c.main([]string{arg}); code != exitOK || errOut.Len() != 0 {
			t.Fatalf("%s = %d: %s", arg, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "archiver ") || !strings.HasPrefix(lines[3], "go: go1.") {
			t.Errorf("%s printed:\n%s", arg, out.String())
		}
	}
}

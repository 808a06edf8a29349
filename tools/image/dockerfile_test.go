package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case
	Args string
}

// parseDockerfile reads the instructions of path, stage by stage (a stage
// starts at FROM).
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages [][]instruction
		line   string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += strings.TrimSpace(cont) + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" || len(stages) == 0 {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func args(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

var labelRE = regexp.MustCompile(`([a-z0-9.\-]+)="([^"]*)"`)

// TestDockerfile checks that the Dockerfile describes the image tools/image
// builds: the same base, binary path, user, working directory, entrypoint,
// command, environment, ports, labels and build flags, and a context
// (.dockerignore) holding what the build needs.
func TestDockerfile(t *testing.T) {
	s := imageSpec()
	stages := parseDockerfile(t, filepath.Join("..", "..", "Dockerfile"))
	if len(stages) != 3 { // the global ARG, build, final
		t.Fatalf("%d stages (counting the ARGs before the first FROM), want 3", len(stages))
	}
	build, final := stages[1], stages[2]

	t.Run("build stage", func(t *testing.T) {
		if build[0].Args != "golang:${GO_VERSION} AS build" {
			t.Errorf("FROM %s", build[0].Args)
		}
		goVersion := goDirective(t)
		if a := args(stages[0], "ARG"); !slices.Contains(a, "GO_VERSION="+goVersion) {
			t.Errorf("ARG %q, want GO_VERSION=%s (go.mod)", a, goVersion)
		}
		want := strings.Join(buildEnv("${TARGETARCH}"), " ") + " GOFLAGS= go build -trimpath -buildvcs=false -ldflags \"" +
			ldflags("${VERSION}", "${COMMIT}", "${DATE}") + "\" -o /out/archiver " + s.Main
		if got := args(build, "RUN"); !slices.Contains(got, want) {
			t.Errorf("no RUN %s\nin %q", want, got)
		}
		// The flags the builder passes are the ones written out above.
		if f := buildFlags("V", "C", "D"); !slices.Equal(f, []string{"-trimpath", "-buildvcs=false", "-ldflags", ldflags("V", "C", "D")}) {
			t.Errorf("buildFlags %q: update the Dockerfile and this test", f)
		}
	})

	t.Run("final stage", func(t *testing.T) {
		if final[0].Args != s.Base {
			t.Errorf("FROM %s, want %s", final[0].Args, s.Base)
		}
		one := func(cmd string) string {
			a := args(final, cmd)
			if len(a) != 1 {
				t.Errorf("%d %s instructions in the final stage, want 1", len(a), cmd)
				return ""
			}
			return a[0]
		}
		if u := one("USER"); u != s.User || u != "65532:65532" {
			t.Errorf("USER %s, want %s", u, s.User)
		}
		if w := one("WORKDIR"); w != s.WorkDir {
			t.Errorf("WORKDIR %s, want %s", w, s.WorkDir)
		}
		for cmd, want := range map[string][]string{"ENTRYPOINT": s.Entrypoint, "CMD": s.Cmd} {
			var got []string
			if err := json.Unmarshal([]byte(one(cmd)), &got); err != nil || !slices.Equal(got, want) {
				t.Errorf("%s %s, want the exec form of %q (%v)", cmd, one(cmd), want, err)
			}
		}
		if e := args(final, "ENV"); !slices.Equal(e, s.Env) {
			t.Errorf("ENV %q, want %q (the base image sets %q)", e, s.Env, s.BaseEnv)
		}
		if p := strings.Fields(one("EXPOSE")); !slices.Equal(p, s.Ports) {
			t.Errorf("EXPOSE %q, want %q", p, s.Ports)
		}
		if c := one("COPY"); c != "--from=build /out/archiver "+s.BinaryPath {
			t.Errorf("COPY %s, want the binary at %s", c, s.BinaryPath)
		}
		got := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(one("LABEL"), -1) {
			got[m[1]] = m[2]
		}
		want := s.labels("${VERSION}", "${COMMIT}", testCreated)
		want["org.opencontainers.image.created"] = "${DATE}"
		if len(got) != len(want) {
			t.Errorf("labels %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("LABEL %s=%q, want %q", k, got[k], v)
			}
		}
	})

	t.Run("context", func(t *testing.T) {
		// What the Dockerfile copies is what .dockerignore lets in, and
		// it is everything of the module the binary imports.
		var copied []string
		for _, a := range args(build, "COPY") {
			f := strings.Fields(a)
			copied = append(copied, f[:len(f)-1]...)
		}
		slices.Sort(copied)
		if want := []string{"cmd", "go.mod", "go.sum", "internal"}; !slices.Equal(copied, want) {
			t.Errorf("COPY %q, want %q", copied, want)
		}
		ignore, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(ignore), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 || lines[0] != "*" {
			t.Errorf(".dockerignore must start with * (everything out), then re-include: %q", lines)
		}
		for _, c := range copied {
			if !slices.Contains(lines, "!"+c) {
				t.Errorf(".dockerignore does not re-include %s", c)
			}
		}
		cmd := exec.Command(goCommand(t), "list", "-deps", "-f", "{{if .Module}}{{.ImportPath}}{{end}}", s.Main)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, p := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(p, s.Module+"/")
			if !ok {
				continue // another module: go mod download fetches it
			}
			if !strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "internal/") {
				t.Errorf("%s imports %s, which is not in the build context", s.Main, p)
			}
		}
	})
}

// goDirective is the language version of go.mod, major.minor ("1.26").
func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// cmdCheckConfig implements "archiver check-config --config FILE": it loads the
// configuration exactly as the daemon would (file, ARCHIVER_* environment,
// secret files) and reports every problem, one per line on stderr, with exit
// code exitConfig. A valid configuration prints "config OK" on stdout, and any
// warnings on stderr, and exits with exitOK.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	return checkConfig(args, stdout, stderr, os.LookupEnv)
}

func checkConfig(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` (TOML); default $"+configEnv+"; without either only the defaults and the environment are checked")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: archiver check-config [--config FILE]\n\n"+
			"Load the configuration as the daemon would (defaults, FILE, ARCHIVER_* environment\n"+
			"variables, *_file secrets) and print every problem, one per line.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "check-config: unexpected argument %q (use --config FILE)\n", fs.Arg(0))
		return exitConfig
	}

	file := *path
	if file == "" {
		file, _ = env(configEnv)
	}
	cfg, err := config.Load(file, env)
	if err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintln(stderr, e)
		}
		return exitConfig
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintln(stdout, "config OK")
	return exitOK
}

// flatten returns the leaves of a tree of errors joined with errors.Join, in
// order, so each problem can be printed on its own line.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

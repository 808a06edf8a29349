package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// configEnv names the configuration file when --config is not given.
const configEnv = "ARCHIVER_CONFIG"

// newFlagSet returns a flag set that reports to stderr, with the --config
// flag every command shares. synopsis is the usage line after "archiver ",
// about a sentence on what the command does.
func (c *cli) newFlagSet(name, synopsis, about string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	path := fs.String("config", "", "configuration `file` (TOML); default $"+configEnv)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: archiver %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs, path
}

// parseFlags parses args and rejects positional arguments. ok is false when
// the command must return code (help: exitOK; an error: exitConfig).
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitConfig, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitConfig, false
	}
	return 0, true
}

// configPath is --config, else $ARCHIVER_CONFIG, else "" (defaults and
// environment only).
func (c *cli) configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p, ok := c.env(configEnv); ok {
		return p
	}
	return ""
}

// loadConfig loads and validates the configuration, printing every problem
// on stderr. ok is false when it is not usable (exit with exitConfig).
func (c *cli) loadConfig(flagValue string) (*config.Config, bool) {
	cfg, err := config.Load(c.configPath(flagValue), c.env)
	if err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintln(c.stderr, e)
		}
		return nil, false
	}
	return cfg, true
}

// setup loads the configuration and builds the logger of command cmd,
// printing what is wrong; false means exit with exitConfig. The caller
// syncs the logger before it returns.
func (c *cli) setup(cmd, flagValue string) (*config.Config, *zap.Logger, bool) {
	cfg, ok := c.loadConfig(flagValue)
	if !ok {
		return nil, nil, false
	}
	log, err := newLogger(cfg.Log, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", cmd, err)
		return nil, nil, false
	}
	return cfg, log, true
}

// newLogger builds the process logger from [log], writing to w.
func newLogger(l config.Log, w io.Writer) (*zap.Logger, error) {
	return buildLogger(l, w, isTerminal(w), false)
}

// buildLogger builds the process logger from [log], writing to w: in the
// console format when log.format says so, or says auto and tty (w is a
// terminal); quiet logs nothing below warn whatever log.level says.
func buildLogger(l config.Log, w io.Writer, tty, quiet bool) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	if quiet {
		lvl = max(lvl, zapcore.WarnLevel)
	}
	format := l.Format
	if format == config.LogAuto {
		format = config.LogJSON
		if tty {
			format = config.LogConsole
		}
	}
	var enc zapcore.Encoder
	switch format {
	case config.LogConsole:
		ec := zap.NewDevelopmentEncoderConfig()
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

// listFlag collects a repeatable flag whose values may also be
// comma-separated: --job cdr --job ivr, --job cdr,ivr.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// printJSON prints v on stdout as indented JSON, the --json output of
// command cmd. false means it could not, and said why on stderr.
func (c *cli) printJSON(cmd string, v any) bool {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", cmd, err)
		return false
	}
	return true
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
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
			"variables, *_file secrets) and print every problem, one per line. Then check\n"+
			"that sink.dir (when sink.type = \"dir\") and the directory of checkpoint.path\n"+
			"(driver sqlite) exist or can be created, and can be written: they are created\n"+
			"if missing and a probe file is written and removed in each. With the s3 sink\n"+
			"and Object Lock in use (retention.rules, object_lock_mode, legal_hold), read\n"+
			"the bucket's Object Lock configuration: Object Lock must be enabled and no\n"+
			"rule's retention_days shorter than the bucket's default retention (a warning\n"+
			"when the bucket cannot be read). Run it as the user the archiver runs as.\n"+
			"Exit code 2 on any problem.\n\nflags:\n")
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
	errs := checkDirs(cfg)
	lockErrs, lockWarn := checkBucketLock(cfg)
	if lockWarn != "" {
		fmt.Fprintln(stderr, "warning:", lockWarn)
	}
	if errs = append(errs, lockErrs...); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return exitConfig
	}
	fmt.Fprintln(stdout, "config OK")
	return exitOK
}

// checkDirs checks the local directories the archiver writes: sink.dir (dir
// sink) and the directory of checkpoint.path (sqlite). Each is created if
// missing, then a probe file is written, synced and removed in it, so that a
// read-only mount, a missing permission or a path under a regular file is
// found before the first run. Each problem names its key.
func checkDirs(cfg *config.Config) []error {
	var errs []error
	if cfg.Sink.Type == config.SinkDir {
		if err := probeDir(cfg.Sink.Dir); err != nil {
			errs = append(errs, &config.FieldError{Field: "sink.dir", Msg: err.Error()})
		}
	}
	if cfg.Checkpoint.Driver == config.DriverSQLite {
		if err := probeDir(filepath.Dir(cfg.Checkpoint.Path)); err != nil {
			errs = append(errs, &config.FieldError{Field: "checkpoint.path", Msg: "directory " + err.Error()})
		}
	}
	return errs
}

// probeDir creates dir if missing and writes and removes a file in it.
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("%s: cannot create: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".archiver-check-config-*")
	if err != nil {
		return fmt.Errorf("%s: cannot write: %w", dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("probe\n"))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	rerr := os.Remove(name)
	if werr != nil {
		return fmt.Errorf("%s: cannot write: %w", dir, werr)
	}
	if rerr != nil {
		return fmt.Errorf("%s: cannot remove a file written there: %w", dir, rerr)
	}
	return nil
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

// lockCheckTimeout bounds check-config's look at the bucket.
const lockCheckTimeout = 15 * time.Second

// checkBucketLock reads the Object Lock configuration of the s3 sink's
// bucket when Object Lock is in use (retention rules, a default mode or
// hold): the bucket must have it enabled, and no rule may keep objects
// for less than the bucket's default retention. A bucket that cannot be
// read gives a warning: nothing was checked.
func checkBucketLock(cfg *config.Config) (errs []error, warning string) {
	s := cfg.Sink.S3
	rules := cfg.Retention.Rules
	if cfg.Sink.Type != config.SinkS3 || (len(rules) == 0 && s.ObjectLockMode == "" && !s.LegalHold) {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockCheckTimeout)
	defer cancel()
	opts := s3Options(cfg, zap.NewNop())
	opts.ConditionalWrite = s3.ConditionalOn // no probe object: check-config writes nothing
	opts.SpoolDir = ""
	sk, err := s3.New(ctx, opts)
	var lc s3.LockConfig
	if err == nil {
		lc, err = sk.LockConfiguration(ctx)
	}
	if err != nil {
		return nil, fmt.Sprintf("sink.s3.bucket: the Object Lock configuration of %q could not be read, so Object Lock and the retention rules were not checked against it: %v", s.Bucket, err)
	}
	field := "sink.s3.object_lock_mode"
	switch {
	case len(rules) > 0:
		field = "retention.rules"
	case s.ObjectLockMode == "":
		field = "sink.s3.legal_hold"
	}
	if !lc.Enabled {
		return []error{&config.FieldError{Field: field, Msg: fmt.Sprintf("bucket %q has no Object Lock enabled: S3 refuses every locked write (enable it when the bucket is created)", s.Bucket)}}, ""
	}
	for i, r := range rules {
		if r.RetentionDays > 0 && r.RetentionDays < lc.Days {
			errs = append(errs, &config.FieldError{Field: fmt.Sprintf("retention.rules[%d].retention_days", i+1),
				Msg: fmt.Sprintf("%d days is shorter than the default retention of bucket %q (%s, %d days): the rule would keep its recordings for less than the bucket's policy", r.RetentionDays, s.Bucket, lc.Mode, lc.Days)})
		}
	}
	return errs, ""
}

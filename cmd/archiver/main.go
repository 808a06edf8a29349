// Command archiver pulls call recordings and CDR packages out of a Huawei Cloud
// Customer Engagement Center and stores them in S3-compatible storage.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"
	// cec.time_zone works where the system has no time-zone database (the
	// container image has none): the system's is used first when present.
	_ "time/tzdata"

	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// Exit codes shared by every subcommand.
const (
	exitOK         = 0
	exitFailed     = 1 // some items failed or are dead, a window failed, or the state is locked
	exitConfig     = 2 // configuration or usage error
	exitPermission = 3 // authentication or permission error
)

const usage = `usage: archiver <command> [flags]

commands:
  run            the daemon: run every enabled job on its schedule until SIGTERM
  once           run the enabled jobs once (or --job NAME), write the ledgers, exit
  backfill       archive the days --from YYYY-MM-DD --to YYYY-MM-DD (--dry-run: only print the plan)
  status         print what the state database holds, per day (works while the daemon runs)
  requeue        move dead items back to pending so the next run tries them again
  resolve        declare a failed or dead item absent by operator decision (--id N --absent REASON)
  hold           place (or --release) an Object Lock legal hold on every object of a call (--call ID)
  verify         check the archive against the state (--deep: re-read every object)
  parquet-backfill
                 write the Parquet files older CDR packages lack (--dry-run: only list them)
  migrate-state  copy the SQLite state into PostgreSQL (--to-dsn-file FILE), verified
  upload         upload a voice file for a third-party chatbot (--vdn N FILE.wav; CC-FS ivr/uploadFile)
  check-config   validate a configuration file and print every problem
  demo           run the archiver end to end against an embedded CEC simulator
  version        print the version, commit, build date and Go version

Every command but demo and version reads its configuration from --config FILE,
or from the file named by $ARCHIVER_CONFIG when --config is not given, plus the
ARCHIVER_* environment overrides. Run "archiver <command> -h" for its flags.

exit codes: 0 success, 1 items or windows failed (or the state is locked by
another archiver; for upload: CC-FS refused or the request failed), 2
configuration or usage error (for upload also a file CC-FS does not take: it
is not sent), 3 authentication or permission error (CEC or S3).
`

func main() {
	stop := startProfiles()
	code := newCLI(os.Stdout, os.Stderr).main(os.Args[1:])
	stop()
	os.Exit(code)
}

// cli is the environment of one invocation. main fills it from the process;
// tests fill it with buffers, a map environment and a fake signal channel.
type cli struct {
	stdout, stderr io.Writer
	// env looks up environment variables (os.LookupEnv).
	env func(string) (string, bool)
	// signals delivers SIGINT/SIGTERM. nil: the process's own signals.
	signals <-chan os.Signal
	// forcedGrace is how long a command waits for its work to release its
	// items after a second signal before it returns anyway.
	forcedGrace time.Duration
	// afterRun, when set, is called by "run" after each job run (tests).
	afterRun func(job string, rep *jobs.Report, err error)
}

func newCLI(stdout, stderr io.Writer) *cli {
	return &cli{stdout: stdout, stderr: stderr, env: os.LookupEnv, forcedGrace: time.Second}
}

func (c *cli) main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return c.cmdRun(rest)
	case "once":
		return c.cmdOnce(rest)
	case "backfill":
		return c.cmdBackfill(rest)
	case "status":
		return c.cmdStatus(rest)
	case "requeue":
		return c.cmdRequeue(rest)
	case "resolve":
		return c.cmdResolve(rest)
	case "hold":
		return c.cmdHold(rest)
	case "verify":
		return c.cmdVerify(rest)
	case "parquet-backfill":
		return c.cmdParquetBackfill(rest)
	case "migrate-state":
		return c.cmdMigrateState(rest)
	case "demo":
		return cmdDemo(rest, c.stdout, c.stderr)
	case "upload":
		return c.cmdUpload(rest)
	case "check-config":
		return checkConfig(rest, c.stdout, c.stderr, c.env)
	case "version", "--version":
		printVersion(c.stdout, buildInfo(debug.ReadBuildInfo))
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(c.stderr, "archiver: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
}

// Command archiver pulls call recordings and CDR packages out of a Huawei Cloud
// Customer Engagement Center and stores them in S3-compatible storage.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes shared by every subcommand.
const (
	exitOK         = 0
	exitFailed     = 1 // some items failed or are dead
	exitConfig     = 2 // configuration or usage error
	exitPermission = 3 // authentication or permission error
)

const usage = `usage: archiver <command> [flags]

commands:
  demo           run the archiver end to end against an embedded CEC simulator
  check-config   validate a configuration file and print every problem
  version        print the version
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return cmdDemo(rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "archiver", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "archiver: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
}

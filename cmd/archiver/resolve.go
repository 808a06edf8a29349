package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// cmdResolve implements "archiver resolve": an operator closes a failed or
// dead item as absent, with a reason that the ledger shows.
func (c *cli) cmdResolve(args []string) int {
	fs, path := c.newFlagSet("resolve", "resolve [--config FILE] --id N --absent REASON",
		"Declare a failed or dead item absent by operator decision: it will not be\n"+
			"tried again, and the day's ledger lists it as operator-attested with REASON\n"+
			"and the time. Use it only for what cannot be fixed (the index lists a file\n"+
			"that never existed, an upstream record that is garbage). IDs are listed by\n"+
			"\"archiver status --failed\". Takes the state lock: stop the daemon first.")
	id := fs.Int64("id", 0, "the item `ID` (from status --failed)")
	reason := fs.String("absent", "", "why the item has no recording (required; shown in the ledger)")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case *id <= 0:
		fmt.Fprintln(c.stderr, "resolve: --id: an item ID (from archiver status --failed) is required")
		return exitConfig
	case strings.TrimSpace(*reason) == "":
		fmt.Fprintln(c.stderr, "resolve: --absent: a reason is required")
		return exitConfig
	}
	cfg, log, ok := c.setup("resolve", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	ctx := context.Background()
	a, err := wire(ctx, cfg, log.With(zap.String("cmd", "resolve")), ctx, wireOptions{noClient: true})
	if err != nil {
		return c.startupError("resolve", err)
	}
	defer a.close()
	it, err := a.archiver.Resolve(ctx, *id, *reason)
	if err != nil {
		fmt.Fprintf(c.stderr, "resolve: %v\n", err)
		if errors.Is(err, checkpoint.ErrNotFound) || errors.Is(err, checkpoint.ErrState) {
			return exitConfig
		}
		return exitFailed
	}
	fmt.Fprintf(c.stdout, "resolve: item %d (%s %s, call %s, day %s) is absent by operator decision: %s\n",
		it.ID, it.Kind, it.UpstreamID, orDash(it.CallID), orDash(it.Day), it.Reason)
	return exitOK
}

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// cmdRequeue implements "archiver requeue": dead items back to pending.
func (c *cli) cmdRequeue(args []string) int {
	fs, path := c.newFlagSet("requeue", "requeue [--config FILE] [--kind KIND]...",
		"Move dead items (those that failed max_attempts times) back to pending with no\n"+
			"attempts counted, so that the next run tries them again. Takes the state lock:\n"+
			"stop the daemon first.")
	var kinds listFlag
	fs.Var(&kinds, "kind", "requeue only items of this `kind` ("+strings.Join(checkpoint.Kinds(), ", ")+"); repeatable or comma-separated")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	for _, k := range kinds {
		if !slices.Contains(checkpoint.Kinds(), k) {
			fmt.Fprintf(c.stderr, "requeue: --kind: unknown kind %q; kinds are %s\n", k, strings.Join(checkpoint.Kinds(), ", "))
			return exitConfig
		}
	}
	cfg, log, ok := c.setup("requeue", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", "requeue"))
	ctx := context.Background()
	a := &app{cfg: cfg, log: log}
	defer a.close()
	if err := a.openStore(ctx, wireOptions{}); err != nil {
		return c.startupError("requeue", err)
	}
	n, err := a.store.Requeue(ctx, kinds...)
	if err != nil {
		fmt.Fprintf(c.stderr, "requeue: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(c.stdout, "requeue: %d dead items are pending again\n", n)
	return exitOK
}

package jobs

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// Resolve records an operator's decision that a failed or dead item has no
// recording to archive (e.g. the index lists a file that never existed):
// the item becomes absent with the operator's reason and the time of the
// decision, and the ledgers are written again, showing it as
// operator-attested. It is the only way, besides the source's own evidence,
// that a recording becomes an absence. Items in any other state are refused.
func (a *Archiver) Resolve(ctx context.Context, id int64, reason string) (checkpoint.Item, error) {
	if err := a.init(); err != nil {
		return checkpoint.Item{}, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return checkpoint.Item{}, fmt.Errorf("jobs: resolve item %d: a reason is required", id)
	}
	it, err := a.Store.Resolve(storeCtx(ctx), id, reason, a.now())
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("jobs: resolve item %d: %w", id, err)
	}
	a.met.Item(it.Kind, "resolved")
	a.log.Warn("item declared absent by an operator", zap.Int64("id", id), zap.String("kind", it.Kind),
		zap.String("upstream_id", it.UpstreamID), zap.String("call_id", it.CallID), zap.String("day", it.Day),
		zap.String("reason", reason))
	if _, err := a.WriteLedgers(ctx); err != nil {
		return it, err
	}
	return it, nil
}

package jobs

import (
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
)

// maxCallbackBody bounds the body of a callback (a few hundred bytes in practice).
const maxCallbackBody = 64 << 10

// maxCallbacks bounds the packages remembered; the oldest are forgotten
// first (a forgotten package is still found by polling).
const maxCallbacks = 10000

// Callbacks receives CC-FS "package ready" callbacks (cec-api.md §3.1): it
// verifies their auth-v2 signature and wakes up the cdr job waiting for the
// package. It is an http.Handler; mount it on the path of the configured
// callBackURL.
type Callbacks struct {
	lookup func(ak string) (sk string, ok bool)
	log    *zap.Logger
	now    func() time.Time

	mu     sync.Mutex
	ready  map[string]chan struct{} // by billFileName; closed when the callback arrived
	byResp map[string]string        // responseId → billFileName from the callback
	order  []string                 // billFileNames, oldest first, for the bound
}

// NewCallbacks returns a receiver that accepts callbacks signed with the
// AK/SK pairs lookup knows.
func NewCallbacks(lookup func(ak string) (sk string, ok bool), log *zap.Logger) *Callbacks {
	if log == nil {
		log = zap.NewNop()
	}
	return &Callbacks{
		lookup: lookup, log: log.Named("callback"), now: time.Now,
		ready: map[string]chan struct{}{}, byResp: map[string]string{},
	}
}

// ServeHTTP handles one callback: POST, body at most 64 KiB, a valid auth-v2
// signature (else 401), a decodable body naming the package (else 400). It
// answers {"resultCode":"0",...}, which CC-FS takes as delivered.
func (c *Callbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallbackBody+1))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if len(body) > maxCallbackBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := cecclient.VerifyRequest(r, body, c.lookup, c.now(), 0); err != nil {
		c.log.Warn("callback rejected", zap.String("remote", r.RemoteAddr), zap.Error(err))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	cb, err := cecclient.DecodeBillCallback(body)
	if err != nil {
		c.log.Warn("callback undecodable", zap.Error(err))
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	ch := c.chanLocked(cb.BillFileName)
	select {
	case <-ch:
	default:
		close(ch)
	}
	if cb.ResponseID != "" {
		c.byResp[cb.ResponseID] = cb.BillFileName
	}
	c.mu.Unlock()
	c.log.Info("package ready", zap.String("bill_file", cb.BillFileName), zap.String("response_id", cb.ResponseID))
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"resultCode":"0","resultDesc":"success"}`)
}

// chanLocked returns the channel of a package, creating it; c.mu is held.
func (c *Callbacks) chanLocked(name string) chan struct{} {
	ch, ok := c.ready[name]
	if !ok {
		ch = make(chan struct{})
		c.ready[name] = ch
		c.order = append(c.order, name)
		for len(c.order) > maxCallbacks {
			old := c.order[0]
			c.order = c.order[1:]
			delete(c.ready, old)
			for id, n := range c.byResp {
				if n == old {
					delete(c.byResp, id)
				}
			}
		}
	}
	return ch
}

// Wait returns a channel that is closed when the callback for billFileName
// has arrived (also when it arrived before Wait was called).
func (c *Callbacks) Wait(billFileName string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chanLocked(billFileName)
}

// nameFor returns the billFileName a callback gave for responseID.
func (c *Callbacks) nameFor(responseID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.byResp[responseID]
	return n, ok
}

package cecsim

import (
	"math/rand/v2"

	"go.uber.org/zap"
)

// pickDelayed chooses the late and the unavailable agent recordings of ds
// (Options.LateRecordings, Options.UnavailableFiles), marks them and returns
// them. The choice depends on seed only and uses its own PRNG, so the counts
// never change the rest of the dataset. Both sets are spread over the dataset:
// the candidates, in call order, are cut into as many equal strata as there are
// recordings to pick, and one is drawn from each stratum.
func pickDelayed(ds *dataset, seed int64, nLate, nUnavailable int) (late, unavailable []*recording) {
	var agents []*recording
	for _, c := range ds.calls {
		agents = append(agents, c.agentRecs...)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x1a7e5ec0))
	late = spread(rng, agents, min(nLate, len(agents)))
	for _, r := range late {
		r.late = true
	}
	rest := make([]*recording, 0, len(agents)-len(late))
	for _, r := range agents {
		if !r.late {
			rest = append(rest, r)
		}
	}
	unavailable = spread(rng, rest, min(nUnavailable, len(rest)))
	for _, r := range unavailable {
		r.unavailable = true
	}
	return late, unavailable
}

// spread draws n of recs (n ≤ len(recs)), one from each of n equal strata, in order.
func spread(rng *rand.Rand, recs []*recording, n int) []*recording {
	out := make([]*recording, 0, n)
	for i := range n {
		lo, hi := i*len(recs)/n, (i+1)*len(recs)/n
		out = append(out, recs[lo+rng.IntN(hi-lo)])
	}
	return out
}

// releaseReply is the answer of the /_sim/release-* admin endpoints.
type releaseReply struct {
	Released int `json:"released"`
}

// ReleaseLate makes every late recording (Options.LateRecordings) appear: CDR
// packages requested from now on list them and they can be downloaded.
// Packages requested before keep their content. It returns how many
// recordings were released: 0 when called again.
func (s *Server) ReleaseLate() int {
	s.mu.Lock()
	n := len(s.late)
	clear(s.late)
	s.mu.Unlock()
	s.log.Info("late recordings released", zap.Int("released", n))
	return n
}

// ReleaseUnavailable makes every unavailable recording (Options.UnavailableFiles)
// downloadable. It returns how many recordings were released: 0 when called again.
func (s *Server) ReleaseUnavailable() int {
	s.mu.Lock()
	n := len(s.unavailable)
	clear(s.unavailable)
	s.mu.Unlock()
	s.log.Info("unavailable recordings released", zap.Int("released", n))
	return n
}

// isLate reports whether r is late now.
func (s *Server) isLate(r *recording) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.late[r]
}

// isWithheld reports whether r cannot be downloaded now: late or unavailable.
func (s *Server) isWithheld(r *recording) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.late[r] || s.unavailable[r]
}

// downloadable returns the recordings of recs that can be downloaded now.
func (s *Server) downloadable(recs []*recording) []*recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*recording, 0, len(recs))
	for _, r := range recs {
		if !s.late[r] && !s.unavailable[r] {
			out = append(out, r)
		}
	}
	return out
}

// lateSnapshot returns a copy of the late set (nil when empty). The caller holds s.mu.
func (s *Server) lateSnapshot() map[*recording]bool {
	if len(s.late) == 0 {
		return nil
	}
	out := make(map[*recording]bool, len(s.late))
	for r := range s.late {
		out[r] = true
	}
	return out
}

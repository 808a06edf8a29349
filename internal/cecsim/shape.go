package cecsim

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// PRNG streams of the shape options: each draws from its own, so one option
// never changes what another one chose.
const (
	streamMissingTransfers = 0x3155_7a4e
	streamMultiAgent       = 0x3a17_a9e7
	streamAfterMidnight    = 0xaf7e_3d19
	streamCollidingNames   = 0xc011_1de5
)

// missingTransferReason is the Manifest reason of an Options.MissingTransferFiles record.
const missingTransferReason = "recordResult N/A with a recordFilePath, but downloadOiapRecord answers 0300012 (No data found): the file does not exist"

// missingTransferFiles turns n transfer records that have a recording (chosen
// over the whole dataset) into records with recordResult N/A whose
// recordFilePath leads nowhere: downloadOiapRecord answers 0300012 for good.
func (g *generator) missingTransferFiles(n int) {
	if n <= 0 {
		return
	}
	var cands []*recording
	owner := map[*recording]*transferRec{}
	for _, c := range g.ds.calls {
		for _, t := range c.transfers {
			if t.rec != nil {
				cands = append(cands, t.rec)
				owner[t.rec] = t
			}
		}
	}
	rng := rand.New(rand.NewPCG(uint64(g.o.Seed), streamMissingTransfers))
	for _, r := range spread(rng, cands, min(n, len(cands))) {
		t := owner[r]
		t.out.RecordResult = cecwire.RecordResultNA
		t.rec, t.absent = nil, missingTransferReason
	}
}

// multiAgentCalls gives n calls that have one agent recording (chosen over the
// whole dataset) a second recording by another agent of the same VDN.
func (g *generator) multiAgentCalls(n int) {
	if n <= 0 {
		return
	}
	rng := rand.New(rand.NewPCG(uint64(g.o.Seed), streamMultiAgent))
	cands := g.agentRecs(func(c *dsCall) bool { return len(c.agentRecs) == 1 })
	for _, r := range spread(rng, cands, min(n, len(cands))) {
		g.secondAgent(r.call, rng)
	}
}

// agentRecs returns the first agent recording of every call that keep accepts, in call order.
func (g *generator) agentRecs(keep func(*dsCall) bool) []*recording {
	var out []*recording
	for _, c := range g.ds.calls {
		if len(c.agentRecs) > 0 && keep(c) {
			out = append(out, c.agentRecs[0])
		}
	}
	return out
}

// secondAgent adds a recording of another agent of the call's VDN.
func (g *generator) secondAgent(c *dsCall, rng *rand.Rand) *recording {
	vdnNum, _ := strconv.Atoi(c.vdn)
	agentID := c.agents[0]
	for agentID == c.agents[0] {
		agentID = strconv.Itoa(vdnNum*100 + 1 + rng.IntN(8))
	}
	c.agents = append(c.agents, agentID)
	return g.agentRecording(c, agentID, rng)
}

// afterMidnight moves n calls (chosen among those with one agent recording
// and no transfer or IVR record) to just before midnight in Location, so that
// they end after it, and makes their agent recording begin after midnight:
// its index call_begin and its file_name date are of the next day, while the
// call's CDR call_begin and its day stay on the day before.
func (g *generator) afterMidnight(n int) {
	if n <= 0 {
		return
	}
	rng := rand.New(rand.NewPCG(uint64(g.o.Seed), streamAfterMidnight))
	cands := g.agentRecs(func(c *dsCall) bool {
		return len(c.agentRecs) == 1 && len(c.transfers) == 0 && len(c.ivrs) == 0
	})
	loc := g.o.Location
	for _, r := range spread(rng, cands, min(n, len(cands))) {
		c := r.call
		y, m, d := c.begin.In(loc).Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		before := time.Duration(30+rng.IntN(600)) * time.Second
		after := time.Duration(60+rng.IntN(900)) * time.Second
		c.begin, c.end = midnight.Add(-before), midnight.Add(after)
		dur := int((before + after) / time.Second)
		c.waitSec, c.ringSec = min(c.waitSec, dur/4), min(c.ringSec, dur/4)
		r.begin = midnight.Add(time.Duration(1+rng.IntN(int(after/time.Second)/2)) * time.Second)
		r.end = c.end
		r.date = midnight.Format("20060102")
		r.afterMidnight = true
	}
}

// collidingBaseNames names every agent recording by a counter per agent and
// file_name date, 1, 2, 3 …, as some CC-FS nodes do: base names like 1.wav
// repeat all over the dataset. The first call with recordings of two agents
// is numbered first, so both of its recordings are 1.wav; if there is no
// such call, one call gets a second agent.
func (g *generator) collidingBaseNames() {
	var first *dsCall
	for _, c := range g.ds.calls {
		if len(c.agentRecs) >= 2 {
			first = c
			break
		}
	}
	if first == nil {
		rng := rand.New(rand.NewPCG(uint64(g.o.Seed), streamCollidingNames))
		if cands := g.agentRecs(func(*dsCall) bool { return true }); len(cands) > 0 {
			first = cands[0].call
			g.secondAgent(first, rng)
		}
	}
	counter := map[[2]string]int{}
	number := func(c *dsCall) {
		for _, r := range c.agentRecs {
			k := [2]string{r.agentID, r.date}
			counter[k]++
			r.name = strconv.Itoa(counter[k])
		}
	}
	if first != nil {
		number(first)
	}
	for _, c := range g.ds.calls {
		if c != first {
			number(c)
		}
	}
}

package cecsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"path"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Manifest is everything an archiver must end up with for the dataset.
type Manifest struct {
	TenantID   string              `json:"tenantId"`
	Calls      []ManifestCall      `json:"calls"`
	Recordings []ManifestRecording `json:"recordings"` // every recording that must be archived
	Absent     []ManifestAbsent    `json:"absent"`     // transfer/IVR records that have no recording, with the reason
}

// ManifestCall is one call of the dataset. Recordings counts the call's
// recordings of every kind (agent, transfer, IVR).
type ManifestCall struct {
	CallID     string    `json:"callId"`
	Day        string    `json:"day"` // yyyy-mm-dd in Location
	AgentID    string    `json:"agentId"`
	VDN        string    `json:"vdn"`
	Begin      time.Time `json:"begin"`
	End        time.Time `json:"end"`
	Recordings int       `json:"recordings"`
}

// ManifestRecording is one recording that must be archived.
type ManifestRecording struct {
	Kind             string `json:"kind"`             // "agent" | "transfer" | "ivr"
	ID               string `json:"id"`               // agent: file_name; transfer: transfer record id; ivr: logId
	CallID           string `json:"callId"`           // the CDR call_id (== OIFDE ctiCallId)
	FileName         string `json:"fileName"`         // agent: file_name (downloadRecordFile); transfer/ivr: recordFilePath (downloadOiapRecord)
	OriginalFileName string `json:"originalFileName"` // agent only: original_file_name (downloadRecord)
	LocationID       string `json:"locationId"`       // transfer/ivr
	Size             int64  `json:"size"`
	SHA256           string `json:"sha256"` // lowercase hex
	// Late: an agent recording missing from the index and from downloads until
	// ReleaseLate (Options.LateRecordings). It stays true after the release.
	Late bool `json:"late,omitempty"`
	// Unavailable: an agent recording indexed from the start whose download
	// answers 0300012 until ReleaseUnavailable (Options.UnavailableFiles). It
	// stays true after the release.
	Unavailable bool `json:"unavailable,omitempty"`
	// AgentID is the index agent_id of an agent recording ("" otherwise). A
	// call's agent recordings may be of several agents (Options.MultiAgentCalls).
	AgentID string `json:"agentId,omitempty"`
	// Day is the day (yyyy-mm-dd in Location) of the call the recording
	// belongs to: the ManifestCall.Day of CallID, also when the recording
	// itself began after midnight.
	Day string `json:"day"`
	// AfterMidnight: an agent recording of a call that began before midnight
	// whose index row (call_begin) and file_name date are of the next day
	// (Options.AfterMidnightRecordings).
	AfterMidnight bool `json:"afterMidnight,omitempty"`
}

// ManifestAbsent is a transfer or IVR record that has no recording. Reason
// says why, with the source's own evidence (opResult, no recordFilePath, or the
// 0300012 answer of downloadOiapRecord for Options.MissingTransferFiles).
type ManifestAbsent struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	CallID string `json:"callId"`
	Reason string `json:"reason"`
}

// Recording kinds.
const (
	KindAgent    = "agent"
	KindTransfer = "transfer"
	KindIVR      = "ivr"
)

// OIFDE record IDs start just above 2^53 and are odd, so a float64 cannot hold
// any of them: a client decoding them as float64 corrupts every one.
const (
	transferIDBase uint64 = 1<<53 + 1
	ivrIDBase      uint64 = 1<<53 + 1 + 1_000_000
)

// recording is one generated WAV file.
type recording struct {
	kind     string
	id       string
	call     *dsCall
	agentID  string // agent recordings
	name     string // agent: base name of file_name without .wav
	date     string // agent: yyyymmdd of file_name (the call's, or the next day's when afterMidnight)
	fileName string
	original string // agent: original_file_name
	location string // transfer/ivr: locationId as text
	size     int64
	seed     uint64
	// begin and end are the agent recording's index call_begin and call_end
	// when they differ from the call's (afterMidnight); zero otherwise.
	begin, end    time.Time
	afterMidnight bool
	bank          *audioBank // the dataset's, set by index
	// Set by pickDelayed, never changed afterwards; whether the recording is
	// still withheld is Server state.
	late, unavailable bool
	// Filled by computeDigests.
	sha string
	crc uint32
}

func (r *recording) open() *wavStream { return newWAVStream(r.bank, r.size, r.seed) }

// zipMemberNames names the members of a ZIP of several agent recordings
// (CC-FS downloadRecord by callId, CC-CMS downloadRecordFile without workNo),
// in the order of recs: each member is the base name of its recording's index
// file_name (e.g. "1234567890.wav" for /10/1/record/39/20261101/3901/1234567890.wav),
// except that when several recordings of the ZIP share a base name
// (Options.CollidingBaseNames), each of those is named
// "<agent_id>_<base name>" (e.g. "3901_1.wav" and "3905_1.wav"). Base names
// are digits only, so a prefixed name never equals another member's. An
// archiver matches members to index rows by the same rule.
func zipMemberNames(recs []*recording) []string {
	count := map[string]int{}
	for _, r := range recs {
		count[path.Base(r.fileName)]++
	}
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = path.Base(r.fileName)
		if count[names[i]] > 1 {
			names[i] = r.agentID + "_" + names[i]
		}
	}
	return names
}

// dsCall is one call with everything the interfaces derive from it.
type dsCall struct {
	id         string
	begin, end time.Time
	day        string // yyyy-mm-dd in Location
	date       string // yyyymmdd in Location
	vdn        string
	ak         string
	nodeID     string
	ccID       string
	caller     string
	callee     string
	flowCallID string
	agents     []string // the first one is the call's agent
	callType   int
	skill      string
	ivrFlow    string
	waitSec    int
	ringSec    int
	cdrRows    int
	release    string
	agentRecs  []*recording
	transfers  []*transferRec
	ivrs       []*ivrRec
	taskDone   []bool // per agent recording: was speech-to-text requested
}

// recordings counts the call's recordings of every kind.
func (c *dsCall) recordings() int {
	n := len(c.agentRecs)
	for _, t := range c.transfers {
		if t.rec != nil {
			n++
		}
	}
	for _, v := range c.ivrs {
		if v.rec != nil {
			n++
		}
	}
	return n
}

// transferRec is one record of queryTransferRecordHistory.
type transferRec struct {
	id     uint64
	call   *dsCall
	start  time.Time
	out    transferRecordOut
	rec    *recording // nil when there is no recording
	absent string     // why rec is nil
}

// ivrRec is one record of queryRecordHistory.
type ivrRec struct {
	id     uint64
	call   *dsCall
	start  time.Time
	out    sessionRecordOut
	rec    *recording
	absent string // why rec is nil
}

// transferRecordOut is an element of transferRecordList as CC sends it: id is a
// JSON number (cecwire.TransferRecord decodes it into a string).
type transferRecordOut struct {
	ID             json.Number     `json:"id"`
	TenantID       string          `json:"tenantId"`
	CallID         string          `json:"callId"`
	CtiCallID      string          `json:"ctiCallId"`
	FlowInstID     string          `json:"flowInstId"`
	CallingNumber  string          `json:"callingNumber"`
	CalledNumber   string          `json:"calledNumber"`
	TransfNumber   string          `json:"transfNumber"`
	StartTime      int64           `json:"startTime"`
	EndTime        int64           `json:"endTime,omitempty"`
	RecordFilePath string          `json:"recordFilePath,omitempty"`
	LocationID     json.RawMessage `json:"locationId,omitempty"`
	OpResult       string          `json:"opResult"`
	RecordResult   string          `json:"recordResult,omitempty"`
}

// sessionRecordOut is an element of recordList; logId is a JSON number.
type sessionRecordOut struct {
	LogID          json.Number     `json:"logId"`
	TenantID       string          `json:"tenantId"`
	CallSorID      string          `json:"callSorId"`
	CallID         string          `json:"callId"`
	CtiCallID      string          `json:"ctiCallId"`
	CallingNumber  string          `json:"callingNumber"`
	CalledNumber   string          `json:"calledNumber"`
	BeginTime      int64           `json:"beginTime"`
	EndTime        int64           `json:"endTime"`
	RecordFilePath string          `json:"recordFilePath,omitempty"`
	LocationID     json.RawMessage `json:"locationId,omitempty"`
}

// dataset is immutable once built.
type dataset struct {
	calls      []*dsCall
	recs       []*recording
	absent     []ManifestAbsent
	byCallID   map[string]*dsCall
	byFlowID   map[string]*dsCall
	byCaller   map[string][]*dsCall
	byFileName map[string]*recording // agent file_name
	byOriginal map[string]*recording // agent original_file_name
	byOiapPath map[string]*recording // transfer/ivr recordFilePath
	vdnOwner   map[string]string     // VDN -> AK
	akVDNs     map[string][]string
	bank       *audioBank // the audio every recording is cut from
}

// location draws the locationId of an OIFDE record: a string or a number, like the docs show.
func (g *generator) location() (raw, text string) {
	choices := [...]struct{ raw, text string }{
		{`"0"`, "0"}, {`"256"`, "256"}, {`256`, "256"}, {`0`, "0"}, {`1`, "1"}, {`"3"`, "3"},
	}
	c := choices[g.rng.IntN(len(choices))]
	return c.raw, c.text
}

// buildDataset generates the dataset from o.Seed. Every random choice is drawn
// in a fixed order from one PRNG, so the same options give the same dataset.
func buildDataset(o *Options) *dataset {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0xcec0da7a5e7))
	ds := &dataset{
		byCallID:   map[string]*dsCall{},
		byFlowID:   map[string]*dsCall{},
		byCaller:   map[string][]*dsCall{},
		byFileName: map[string]*recording{},
		byOriginal: map[string]*recording{},
		byOiapPath: map[string]*recording{},
		vdnOwner:   map[string]string{},
		akVDNs:     map[string][]string{},
		bank:       newAudioBank(uint64(o.Seed)),
	}
	var vdns []string
	for i, ak := range sortedAKs(o.Credentials) {
		for _, base := range []int{39, 61} {
			v := strconv.Itoa(base + 100*i)
			vdns = append(vdns, v)
			ds.vdnOwner[v] = ak
			ds.akVDNs[ak] = append(ds.akVDNs[ak], v)
		}
	}

	// Times first, then sort, then everything else in call order.
	calls := make([]*dsCall, o.Calls)
	for i := range calls {
		day := i * o.Days / o.Calls
		d0, d1 := o.Start.AddDate(0, 0, day), o.Start.AddDate(0, 0, day+1)
		begin := d0.Add(time.Duration(rng.Int64N(int64(d1.Sub(d0)/time.Second))) * time.Second)
		dur := time.Duration(logUniform(rng, 10, 30*60)) * time.Second
		calls[i] = &dsCall{begin: begin, end: begin.Add(dur)}
	}
	sort.SliceStable(calls, func(a, b int) bool { return calls[a].begin.Before(calls[b].begin) })

	g := &generator{o: o, rng: rng, ds: ds, names: map[string]bool{}}
	for _, c := range calls {
		g.fillCall(c, vdns)
		ds.calls = append(ds.calls, c)
		ds.byCallID[c.id] = c
		ds.byFlowID[c.flowCallID] = c
		ds.byCaller[c.caller] = append(ds.byCaller[c.caller], c)
	}
	// The shape options draw from PRNGs of their own, after everything
	// else, so that with all of them off the dataset is what it always was.
	g.missingTransferFiles(o.MissingTransferFiles)
	g.multiAgentCalls(o.MultiAgentCalls)
	g.afterMidnight(o.AfterMidnightRecordings)
	if o.CollidingBaseNames {
		g.collidingBaseNames()
	}
	ds.index(o.Seed)
	return ds
}

// index sorts the calls and builds the agent recordings' paths, the lookup
// maps, the recording list and the absent list from them.
func (ds *dataset) index(seed int64) {
	sort.SliceStable(ds.calls, func(a, b int) bool { return ds.calls[a].begin.Before(ds.calls[b].begin) })
	ds.recs, ds.absent = nil, nil
	clear(ds.byFileName)
	clear(ds.byOriginal)
	clear(ds.byOiapPath)
	for _, c := range ds.calls {
		for _, r := range c.agentRecs {
			r.fileName = fmt.Sprintf("/%s/%s/record/%s/%s/%s/%s.wav", c.nodeID, c.ccID, c.vdn, r.date, r.agentID, r.name)
			r.original = fmt.Sprintf("X:/%s/%s/%s/%s/%s.V3", c.nodeID, c.ccID, r.date, r.agentID, r.name)
			r.id = r.fileName
			r.seed = recordingSeed(seed, r.kind, r.id)
			r.bank = ds.bank
			ds.byFileName[r.fileName] = r
			ds.byOriginal[r.original] = r
			ds.recs = append(ds.recs, r)
		}
		for _, t := range c.transfers {
			if t.rec != nil {
				t.rec.bank = ds.bank
				ds.byOiapPath[t.rec.fileName] = t.rec
				ds.recs = append(ds.recs, t.rec)
			} else {
				ds.absent = append(ds.absent, ManifestAbsent{Kind: KindTransfer, ID: t.out.ID.String(), CallID: c.id, Reason: t.absent})
			}
		}
		for _, v := range c.ivrs {
			if v.rec != nil {
				v.rec.bank = ds.bank
				ds.byOiapPath[v.rec.fileName] = v.rec
				ds.recs = append(ds.recs, v.rec)
			} else {
				ds.absent = append(ds.absent, ManifestAbsent{Kind: KindIVR, ID: v.out.LogID.String(), CallID: c.id, Reason: v.absent})
			}
		}
	}
}

// generator carries the state of one buildDataset run.
type generator struct {
	o         *Options
	rng       *rand.Rand
	ds        *dataset
	names     map[string]bool // used call IDs and file names
	transfers uint64
	ivrs      uint64
}

// unique draws until gen returns a value not used yet.
func (g *generator) unique(gen func() string) string {
	for {
		s := gen()
		if !g.names[s] {
			g.names[s] = true
			return s
		}
	}
}

func (g *generator) fillCall(c *dsCall, vdns []string) {
	rng, o := g.rng, g.o
	local := c.begin.In(o.Location)
	c.day = local.Format("2006-01-02")
	c.date = local.Format("20060102")
	c.vdn = vdns[rng.IntN(len(vdns))]
	c.ak = g.ds.vdnOwner[c.vdn]
	c.id = g.unique(func() string { return fmt.Sprintf("%d-%05d", c.begin.Unix(), 10000+rng.IntN(90000)) })
	c.nodeID = []string{"10", "17"}[rng.IntN(2)]
	c.ccID = "1"
	c.caller = fmt.Sprintf("1380013%04d", rng.IntN(10000))
	if rng.Float64() < 0.2 {
		// Repeat callers: a userMobile query then spans several calls and pages.
		c.caller = fmt.Sprintf("1380013000%d", rng.IntN(3))
	}
	c.callee = fmt.Sprintf("400800%04s", c.vdn)
	c.flowCallID = g.unique(func() string { return fmt.Sprintf("%d%06d", c.begin.UnixMilli(), rng.IntN(1_000_000)) })
	vdnNum, _ := strconv.Atoi(c.vdn)
	agent := func() string { return strconv.Itoa(vdnNum*100 + 1 + rng.IntN(8)) }
	c.agents = []string{agent()}
	if rng.Float64() < 0.15 {
		c.callType = 1 // outbound
	}
	c.skill = strconv.Itoa(1 + rng.IntN(4))
	c.ivrFlow = strconv.Itoa(700 + rng.IntN(5))
	dur := int(c.end.Sub(c.begin) / time.Second)
	c.waitSec = rng.IntN(min(30, dur/4) + 1)
	c.ringSec = rng.IntN(min(10, dur/4) + 1)
	c.cdrRows = 1 + rng.IntN(3)
	c.release = []string{"0", "0", "0", "16", "31"}[rng.IntN(5)]

	nAgent := 1
	switch u := rng.Float64(); {
	case u < 0.1:
		nAgent = 0
	case u >= 0.9:
		nAgent = 2
	}
	for k := 0; k < nAgent; k++ {
		agentID := c.agents[0]
		if k > 0 {
			for agentID == c.agents[0] {
				agentID = agent()
			}
			c.agents = append(c.agents, agentID)
		}
		g.agentRecording(c, agentID, rng)
	}

	if rng.Float64() < 0.3 {
		for k, n := 0, 1+rng.IntN(2); k < n; k++ {
			g.transfer(c)
		}
	}
	if rng.Float64() < 0.3 {
		for k, n := 0, 1+rng.IntN(2); k < n; k++ {
			g.ivr(c)
		}
	}
}

// agentRecording adds an agent recording of agentID to c, drawing its name,
// size and transcription flag from rng in that order. index sets its paths.
func (g *generator) agentRecording(c *dsCall, agentID string, rng *rand.Rand) *recording {
	r := &recording{
		kind:    KindAgent,
		call:    c,
		agentID: agentID,
		name:    g.unique(func() string { return strconv.FormatInt(1_000_000_000+rng.Int64N(9_000_000_000), 10) }),
		date:    c.date,
		size:    g.sizeFrom(rng),
	}
	c.agentRecs = append(c.agentRecs, r)
	c.taskDone = append(c.taskDone, rng.Float64() < 0.2)
	return r
}

func (g *generator) transfer(c *dsCall) {
	rng := g.rng
	id := transferIDBase + 2*g.transfers
	g.transfers++
	dur := c.end.Sub(c.begin)
	start := c.begin.Add(time.Duration(rng.Int64N(int64(dur/2)/int64(time.Second)+1)) * time.Second)
	end := start.Add(time.Duration(5+rng.IntN(600)) * time.Second)
	if end.After(c.end) {
		end = c.end
	}
	locRaw, locText := g.location()
	t := &transferRec{id: id, call: c, start: start}
	t.out = transferRecordOut{
		ID:            json.Number(strconv.FormatUint(id, 10)),
		TenantID:      g.o.TenantID,
		CallID:        c.flowCallID,
		CtiCallID:     c.id,
		FlowInstID:    strconv.FormatInt(c.begin.UnixMilli()*1000+int64(rng.IntN(1000)), 10),
		CallingNumber: c.caller,
		CalledNumber:  c.callee,
		TransfNumber:  fmt.Sprintf("0755%08d", rng.IntN(100_000_000)),
		StartTime:     start.UnixMilli(),
		EndTime:       end.UnixMilli(),
		LocationID:    json.RawMessage(locRaw),
	}
	// recordResult N/A is "no feedback", not "no file" (cec-api.md A.5): such
	// a record has a path and a recording. Its name and size come from a PRNG
	// of its own, so the records after it are what they were when N/A
	// records had no recording.
	fileRNG := rng
	switch u := rng.Float64(); {
	case u < 0.7:
		t.out.OpResult, t.out.RecordResult = cecwire.OpResultSuccess, cecwire.RecordResultOK
	case u < 0.8:
		t.out.OpResult, t.out.EndTime = cecwire.OpResultInit, 0
		t.absent = "opResult INIT: the transfer never started"
	case u < 0.9:
		t.out.OpResult = cecwire.OpResultFail
		t.absent = "opResult FAIL: the transfer failed"
	default:
		t.out.OpResult, t.out.RecordResult = cecwire.OpResultSuccess, cecwire.RecordResultNA
		fileRNG = rand.New(rand.NewPCG(uint64(g.o.Seed), 0x4e2f41^id))
	}
	if t.absent == "" {
		name := g.unique(func() string { return strconv.FormatInt(10_000_000+fileRNG.Int64N(90_000_000), 10) })
		t.out.RecordFilePath = fmt.Sprintf("Y:/%s/transferrecord/%s/%s.wav", c.vdn, c.date, name)
		t.rec = g.oiapRecording(KindTransfer, t.out.ID.String(), c, t.out.RecordFilePath, locText, fileRNG)
	}
	c.transfers = append(c.transfers, t)
}

func (g *generator) ivr(c *dsCall) {
	rng := g.rng
	id := ivrIDBase + 2*g.ivrs
	shape := g.ivrs % 4
	g.ivrs++
	start := c.begin.Add(time.Duration(rng.IntN(3)) * time.Second)
	end := start.Add(time.Duration(5+rng.IntN(300)) * time.Second)
	if end.After(c.end) {
		end = c.end
	}
	locRaw, locText := g.location()
	v := &ivrRec{id: id, call: c, start: start}
	v.out = sessionRecordOut{
		LogID:         json.Number(strconv.FormatUint(id, 10)),
		TenantID:      g.o.TenantID,
		CallSorID:     c.caller,
		CallID:        c.flowCallID,
		CtiCallID:     c.id,
		CallingNumber: c.caller,
		CalledNumber:  c.callee,
		BeginTime:     start.UnixMilli(),
		EndTime:       end.UnixMilli(),
		LocationID:    json.RawMessage(locRaw),
	}
	if rng.Float64() < 0.9 {
		name := g.unique(func() string { return strconv.FormatInt(10_000_000_000_000_000+rng.Int64N(89_999_999_999_999_999), 10) })
		// The four path shapes of cec-api.md A.1, in turn.
		v.out.RecordFilePath = [...]string{
			fmt.Sprintf("Y:/record/%s/odfsrecord/%s/%s.wav", c.vdn, c.date, name),
			fmt.Sprintf("Y:/%s/odfsrecord/%s/%s.wav", c.vdn, c.date, name),
			fmt.Sprintf("Y:/record/%s/%s/%s.wav", c.vdn, c.date, name),
			fmt.Sprintf("Y:/%s/transferrecord/%s/%s.wav", c.vdn, c.date, name),
		}[shape]
		v.rec = g.oiapRecording(KindIVR, v.out.LogID.String(), c, v.out.RecordFilePath, locText, rng)
	} else {
		v.absent = "no recordFilePath: the session was not recorded"
	}
	c.ivrs = append(c.ivrs, v)
}

func (g *generator) oiapRecording(kind, id string, c *dsCall, filePath, location string, rng *rand.Rand) *recording {
	r := &recording{kind: kind, id: id, call: c, fileName: filePath, location: location, size: g.sizeFrom(rng)}
	r.seed = recordingSeed(g.o.Seed, kind, id)
	return r
}

// sizeFrom draws a log-uniform even size between the configured bounds.
func (g *generator) sizeFrom(rng *rand.Rand) int64 {
	n := int64(logUniform(rng, float64(g.o.MinRecordingBytes), float64(g.o.MaxRecordingBytes)))
	n = max(g.o.MinRecordingBytes, min(n, g.o.MaxRecordingBytes))
	if n%2 == 1 {
		// Even sizes keep the data chunk even (no RIFF pad byte).
		if n-1 >= g.o.MinRecordingBytes {
			n--
		} else {
			n++
		}
	}
	return n
}

// logUniform draws one value whatever the bounds, so that the size bounds
// never change the rest of the dataset.
func logUniform(rng *rand.Rand, lo, hi float64) float64 {
	u := rng.Float64()
	if hi <= lo {
		return lo
	}
	return math.Exp(math.Log(lo) + u*(math.Log(hi)-math.Log(lo)))
}

// recordingSeed derives the content seed of a recording from the dataset seed and its identity.
func recordingSeed(seed int64, kind, id string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%s", seed, kind, id)
	return h.Sum64()
}

// computeDigests streams every recording once through SHA-256 and CRC-32, in parallel.
func computeDigests(recs []*recording) {
	work := make(chan *recording)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				sh, cr := sha256.New(), crc32.NewIEEE()
				// Writes to hashes never fail and the stream never errors.
				_, _ = r.open().WriteTo(io.MultiWriter(sh, cr))
				r.sha = hex.EncodeToString(sh.Sum(nil))
				r.crc = cr.Sum32()
			}
		}()
	}
	for _, r := range recs {
		work <- r
	}
	close(work)
	wg.Wait()
}

// manifest describes the dataset. Recordings follow the call order; within a call:
// agent, transfer, IVR.
func (ds *dataset) manifest(tenantID string) *Manifest {
	m := &Manifest{TenantID: tenantID, Calls: []ManifestCall{}, Recordings: []ManifestRecording{}, Absent: []ManifestAbsent{}}
	for _, c := range ds.calls {
		m.Calls = append(m.Calls, ManifestCall{
			CallID: c.id, Day: c.day, AgentID: c.agents[0], VDN: c.vdn,
			Begin: c.begin, End: c.end, Recordings: c.recordings(),
		})
		add := func(r *recording) {
			if r != nil {
				m.Recordings = append(m.Recordings, ManifestRecording{
					Kind: r.kind, ID: r.id, CallID: c.id, FileName: r.fileName, OriginalFileName: r.original,
					LocationID: r.location, Size: r.size, SHA256: r.sha, Late: r.late, Unavailable: r.unavailable,
					AgentID: r.agentID, Day: c.day, AfterMidnight: r.afterMidnight,
				})
			}
		}
		for _, r := range c.agentRecs {
			add(r)
		}
		for _, t := range c.transfers {
			add(t.rec)
		}
		for _, v := range c.ivrs {
			add(v.rec)
		}
	}
	m.Absent = append(m.Absent, ds.absent...)
	return m
}

// clone returns a deep copy, so callers cannot change the server's manifest.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Calls = append(make([]ManifestCall, 0, len(m.Calls)), m.Calls...)
	c.Recordings = append(make([]ManifestRecording, 0, len(m.Recordings)), m.Recordings...)
	c.Absent = append(make([]ManifestAbsent, 0, len(m.Absent)), m.Absent...)
	return &c
}

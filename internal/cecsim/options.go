// Package cecsim is a simulator of the Huawei Cloud CEC interfaces that
// cec-archiver talks to: CC-FS (CDR packages and recording downloads, uploads),
// CC-CMS (inspection recording download) and OIFDE (token, transfer and session
// records). It follows ../../shared/cec-api.md to the letter: every auth-v2
// signature is verified, every documented field rule is enforced, and where the
// documentation is silent the simulator is strict.
//
// The dataset (calls, recordings, OIFDE records) is generated deterministically
// from Options.Seed; recordings are real G.711 A-law WAV files produced as a
// stream, so they cost no memory whatever their size, and cut from a small
// bank of audio synthesised once, so serving them costs about the CPU of a
// static file server. Manifest lists what an archiver must end up with,
// including the SHA-256 of every recording (computed once, in New).
//
// Faults (HTTP errors, flow control, connection resets, truncation, slow bodies,
// token expiry, pagination drift) can be injected at start, through the Go API
// or through the unsigned /_sim/ admin endpoints. So can upstream
// misbehaviours, answers that look like success but are not what they claim:
// a text or code-less JSON body sent as a recording (text_body, json_no_code),
// a WAV shorter or longer than its RIFF header (riff_short, riff_long), a
// gzipped WAV (gzip), a body that never ends or claims 5 GiB (endless, huge),
// one byte every two seconds (trickle), an OIFDE total of 10^15 with full pages
// forever (huge_total), a CDR package that is a ZIP bomb, holds a row without
// call_id or expires after it was announced (zip_bomb, bad_package,
// expired_package), and a one-off HTTP 401 (unauthorized). See FaultKind.
//
// Two kinds of agent recordings make the dataset change over time (see
// Options.LateRecordings and Options.UnavailableFiles): late ones are absent
// from the recording index and from every download until ReleaseLate, and
// unavailable ones are indexed from the start but cannot be downloaded until
// ReleaseUnavailable.
//
// Admin endpoints (Options.Admin, unsigned):
//
//	GET/POST/DELETE /_sim/faults   the active faults (POST replaces them with a JSON array)
//	GET  /_sim/manifest            the Manifest
//	GET  /_sim/stats               the Stats
//	GET  /_sim/uploads             the files ivr/uploadFile accepted (Uploads)
//	POST /_sim/release-late        ReleaseLate; answers {"released": N}
//	POST /_sim/release-unavailable ReleaseUnavailable; answers {"released": N}
package cecsim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Options configures a Server. The zero value is usable: every field has a default.
type Options struct {
	Seed              int64
	Calls             int               // calls in the dataset (default 50)
	Days              int               // days the calls are spread over (default 1)
	Start             time.Time         // first day; truncated to midnight in Location (default 2026-11-01)
	Location          *time.Location    // tenant time zone for CDR dates, bill windows, billFileName date (default UTC)
	Credentials       map[string]string // AK -> SK (default {"exampleAK": "exampleSK"})
	TenantID          string            // OIFDE appKey/tenantId (default "tenant-sim")
	APIPassword       string            // OIFDE appSecret (default "sim-api-password")
	TokenTTL          time.Duration     // expireTime of gettoken (default 1h; reported in whole seconds, min 1)
	BillReadyDelay    time.Duration     // a package becomes downloadable this long after queryBillData (default 2s; negative = at once)
	CallbackRetry     time.Duration     // interval between callback retries (default 10m, like CC-FS), max 6 tries
	MaxClockSkew      time.Duration     // default 15m
	MinRecordingBytes int64             // default 4 KiB (or MaxRecordingBytes if that is smaller)
	MaxRecordingBytes int64             // default 256 KiB; sizes spread log-uniformly between min and max
	UploadLimitBytes  int64             // ivr/uploadFile size limit (default 5 MB = 5*1024*1024)
	Admin             bool              // serve the /_sim/ admin endpoints (unsigned)
	Faults            []Fault           // initial faults
	Now               func() time.Time  // default time.Now
	Logger            *zap.Logger       // default zap.NewNop()
	CallbackClient    *http.Client      // used for callbacks (default: a client with 10s timeout)

	// LateRecordings agent recordings (chosen from Seed, spread over the
	// dataset; capped at the number of agent recordings) are late: until
	// ReleaseLate their index rows are missing from every CDR package and
	// every download answers as for an unknown file. Their calls' CDR rows
	// are there from the start.
	LateRecordings int
	// UnavailableFiles other agent recordings (capped at those left after the
	// late ones) are in the index from the start, but downloading them answers
	// 0300012 (No data found) until ReleaseUnavailable.
	UnavailableFiles int

	// The shape options below are off at zero and draw from PRNGs of their
	// own, so a dataset without them is the same as before they existed.
	// Transfer records with recordResult N/A carry a recordFilePath and a
	// recording whatever these say (cec-api.md A.5: N/A is "no feedback").

	// MissingTransferFiles transfer records (chosen over the dataset among
	// those with a recording; capped at their number) get recordResult N/A
	// and keep their recordFilePath, but downloadOiapRecord answers 0300012
	// for it forever: they are Manifest.Absent with a reason naming 0300012.
	MissingTransferFiles int
	// CollidingBaseNames names agent recordings by a counter per agent and
	// day, /{node}/{cc}/record/{vdn}/{yyyymmdd}/{agentId}/{n}.wav (and
	// X:/{node}/{cc}/{yyyymmdd}/{agentId}/{n}.V3), so base names like 1.wav
	// repeat; at least one call has two recordings, of two agents, both 1.wav.
	CollidingBaseNames bool
	// MultiAgentCalls calls with one agent recording (chosen over the
	// dataset; capped) get a second recording by another agent: index rows
	// with different agent_id for the same call_id. Without workNo, CC-CMS
	// downloadRecordFile and CC-FS downloadRecord by callId answer a ZIP of
	// all the call's recordings, named as zipMemberNames says: the base name
	// of each file_name, or "<agent_id>_<base name>" for the members whose
	// base names are the same. (About one call in ten has two agents anyway.)
	MultiAgentCalls int
	// AfterMidnightRecordings calls (chosen among those with one agent
	// recording and no transfer or IVR record; capped) begin shortly before
	// midnight in Location and end after it; their agent recording's index
	// call_begin and file_name date are of the next day. The CDR keeps the
	// call's begin, and the recording belongs to the call's day
	// (ManifestRecording.Day, AfterMidnight).
	AfterMidnightRecordings int
}

// Defaults and hard limits.
const (
	defaultCalls          = 50
	defaultTenantID       = "tenant-sim"
	defaultAPIPassword    = "sim-api-password"
	defaultAK             = "exampleAK"
	defaultSK             = "exampleSK"
	defaultTokenTTL       = time.Hour
	defaultBillReadyDelay = 2 * time.Second
	defaultCallbackRetry  = 10 * time.Minute
	defaultMaxClockSkew   = 15 * time.Minute
	defaultMinRecording   = 4 << 10
	defaultMaxRecording   = 256 << 10
	defaultUploadLimit    = 5 * 1024 * 1024
	callbackTries         = 6
	// minRecordingBytes is a WAV header plus one pair of samples.
	minRecordingBytes = wavHeaderSize + 2
	// maxRecordingBytes keeps the RIFF size field within 32 bits.
	maxRecordingBytes = 1<<32 - 2
)

// normalize fills in defaults and checks the options.
func (o Options) normalize() (Options, error) {
	if o.Calls == 0 {
		o.Calls = defaultCalls
	}
	if o.Calls < 0 {
		return o, fmt.Errorf("cecsim: Calls must be positive, got %d", o.Calls)
	}
	if o.Days == 0 {
		o.Days = 1
	}
	if o.Days < 0 {
		return o, fmt.Errorf("cecsim: Days must be positive, got %d", o.Days)
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, time.November, 1, 0, 0, 0, 0, o.Location)
	}
	y, m, d := o.Start.In(o.Location).Date()
	o.Start = time.Date(y, m, d, 0, 0, 0, 0, o.Location)

	if len(o.Credentials) == 0 {
		o.Credentials = map[string]string{defaultAK: defaultSK}
	}
	creds := make(map[string]string, len(o.Credentials))
	for ak, sk := range o.Credentials {
		if ak == "" || strings.ContainsAny(ak, "/ \t\r\n") {
			return o, fmt.Errorf("cecsim: invalid AK %q: it must be non-empty without '/' or spaces", ak)
		}
		if sk == "" {
			return o, fmt.Errorf("cecsim: empty SK for AK %q", ak)
		}
		creds[ak] = sk
	}
	o.Credentials = creds
	if o.TenantID == "" {
		o.TenantID = defaultTenantID
	}
	if o.APIPassword == "" {
		o.APIPassword = defaultAPIPassword
	}

	var err error
	if o.TokenTTL, err = positiveDuration("TokenTTL", o.TokenTTL, defaultTokenTTL); err != nil {
		return o, err
	}
	switch {
	case o.BillReadyDelay == 0:
		o.BillReadyDelay = defaultBillReadyDelay
	case o.BillReadyDelay < 0:
		o.BillReadyDelay = 0
	}
	if o.CallbackRetry, err = positiveDuration("CallbackRetry", o.CallbackRetry, defaultCallbackRetry); err != nil {
		return o, err
	}
	if o.MaxClockSkew, err = positiveDuration("MaxClockSkew", o.MaxClockSkew, defaultMaxClockSkew); err != nil {
		return o, err
	}

	if o.MaxRecordingBytes == 0 {
		o.MaxRecordingBytes = defaultMaxRecording
	}
	if o.MinRecordingBytes == 0 {
		// Only a maximum given: it may be below the default minimum.
		o.MinRecordingBytes = min(defaultMinRecording, o.MaxRecordingBytes)
	}
	if o.MinRecordingBytes < minRecordingBytes {
		return o, fmt.Errorf("cecsim: MinRecordingBytes must be at least %d, got %d", minRecordingBytes, o.MinRecordingBytes)
	}
	if o.MaxRecordingBytes < o.MinRecordingBytes {
		return o, fmt.Errorf("cecsim: MaxRecordingBytes (%d) is below MinRecordingBytes (%d)", o.MaxRecordingBytes, o.MinRecordingBytes)
	}
	if o.MaxRecordingBytes > maxRecordingBytes {
		return o, fmt.Errorf("cecsim: MaxRecordingBytes must be at most %d (a RIFF file), got %d", int64(maxRecordingBytes), o.MaxRecordingBytes)
	}
	if o.LateRecordings < 0 {
		return o, fmt.Errorf("cecsim: LateRecordings must not be negative, got %d", o.LateRecordings)
	}
	if o.UnavailableFiles < 0 {
		return o, fmt.Errorf("cecsim: UnavailableFiles must not be negative, got %d", o.UnavailableFiles)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"MissingTransferFiles", o.MissingTransferFiles}, {"MultiAgentCalls", o.MultiAgentCalls}, {"AfterMidnightRecordings", o.AfterMidnightRecordings}} {
		if f.n < 0 {
			return o, fmt.Errorf("cecsim: %s must not be negative, got %d", f.name, f.n)
		}
	}
	if o.UploadLimitBytes == 0 {
		o.UploadLimitBytes = defaultUploadLimit
	}
	if o.UploadLimitBytes < 0 {
		return o, fmt.Errorf("cecsim: UploadLimitBytes must be positive, got %d", o.UploadLimitBytes)
	}

	faults := make([]Fault, len(o.Faults))
	for i, f := range o.Faults {
		if err := f.Validate(); err != nil {
			return o, fmt.Errorf("cecsim: fault %d: %w", i, err)
		}
		faults[i] = f
	}
	o.Faults = faults
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.CallbackClient == nil {
		o.CallbackClient = &http.Client{Timeout: 10 * time.Second}
	}
	return o, nil
}

func positiveDuration(name string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < 0:
		return 0, fmt.Errorf("cecsim: %s must be positive, got %s", name, d)
	}
	return d, nil
}

// sortedAKs returns the AKs in lexical order: AK number i owns VDNs 39+100i and 61+100i.
func sortedAKs(creds map[string]string) []string {
	aks := make([]string, 0, len(creds))
	for ak := range creds {
		aks = append(aks, ak)
	}
	sort.Strings(aks)
	return aks
}

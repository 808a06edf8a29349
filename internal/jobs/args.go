package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Args is the typed arguments of an item of one kind: its JSON is what the
// store keeps for the item (checkpoint.Item.Args, column params), and the
// worker for the kind receives the decoded value. The JSON field names are
// the keys of the string maps earlier versions stored, so that their rows
// decode unchanged.
type Args interface {
	Kind() string
}

// AgentArgs is a recording-index row: one agent recording fetched by its
// file name (UpstreamID = file_name).
type AgentArgs struct {
	FileName         string    `json:"file_name"`
	OriginalFileName string    `json:"original_file_name,omitempty"`
	CcID             string    `json:"cc_id,omitempty"`
	AgentID          string    `json:"agent_id,omitempty"`
	VDN              string    `json:"vdn,omitempty"`
	CallBegin        time.Time `json:"call_begin"`
	ObjectMeta
}

// Kind is checkpoint.KindAgent.
func (AgentArgs) Kind() string { return checkpoint.KindAgent }

// CMSArgs is the call-level agent item of a call with Method cms: CC-CMS
// returns the call's recordings (a WAV or a ZIP) by call id. Members lists
// the file_name of every recording-index row of the call: the download
// must hold each of them. Its UpstreamID is "cms:"+call id, which keeps it
// apart from the call's index rows in the store's unique key; what makes it
// a call-level item is its arguments (Members), not that prefix.
type CMSArgs struct {
	CallID    string    `json:"call_id"`
	AgentID   string    `json:"agent_id,omitempty"`
	VDN       string    `json:"vdn,omitempty"`
	CallBegin time.Time `json:"call_begin"`
	Members   []string  `json:"members"`
	ObjectMeta
}

// Kind is checkpoint.KindAgent: a call-level download is an agent item.
func (CMSArgs) Kind() string { return checkpoint.KindAgent }

// cmsUpstreamID is the UpstreamID of a call's CMS item.
func cmsUpstreamID(callID string) string { return "cms:" + callID }

// OIAPArgs is a transfer or IVR recording found by a lookup, downloaded by
// downloadOiapRecord. An item absent on the lookup's evidence carries only
// CallBegin.
type OIAPArgs struct {
	kind       string    // checkpoint.KindTransfer or checkpoint.KindIVR
	RecordPath string    `json:"record_path,omitempty"`
	LocationID string    `json:"location_id,omitempty"`
	CallBegin  time.Time `json:"call_begin"`
	VDN        string    `json:"vdn,omitempty"`
	AgentID    string    `json:"agent_id,omitempty"`
	ObjectMeta
}

// Kind is checkpoint.KindTransfer or checkpoint.KindIVR.
func (a OIAPArgs) Kind() string { return a.kind }

// LookupArgs is a per-call query of OIFDE for the call's transfer or IVR
// records (UpstreamID = call id).
type LookupArgs struct {
	kind      string    // checkpoint.KindTransferLookup or checkpoint.KindIVRLookup
	CallID    string    `json:"call_id"`
	CallBegin time.Time `json:"call_begin"`
	VDN       string    `json:"vdn"`
	AgentID   string    `json:"agent_id"`
}

// Kind is checkpoint.KindTransferLookup or checkpoint.KindIVRLookup.
func (a LookupArgs) Kind() string { return a.kind }

// ObjectMeta is the object metadata a recording is stored with, fixed when
// its item is added: the policy has already left out or hashed phone
// numbers. Rows of earlier versions hold it as "meta.<k>" and "tag.<k>"
// keys beside the other arguments; decodeArgs reads those too.
type ObjectMeta struct {
	Metadata map[string]string `json:"meta,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	// Call is the call data the retention rules look at (callData), kept
	// for the choice at write time.
	Call map[string]string `json:"call,omitempty"`
	// Retention is the retention rule the recording was stored under, set
	// when it is done (retention.go). Items added by an earlier version
	// hold the rule chosen when they were added, and no Call.
	Retention *RetentionChoice `json:"retention,omitempty"`
}

func objectMeta(m sink.Meta) ObjectMeta {
	return ObjectMeta{Metadata: m.Metadata, Tags: m.Tags}
}

// sinkMeta is the sink.Meta of a Put of the recording under the
// retention choice c (nil: the sink's settings): its Object Lock, and its
// rule named in the metadata.
func (m ObjectMeta) sinkMeta(contentType, sha256 string, c *RetentionChoice) sink.Meta {
	out := sink.Meta{Metadata: make(map[string]string, len(m.Metadata)+1), Tags: make(map[string]string, len(m.Tags)),
		ContentType: contentType, SHA256: sha256, Lock: c.lock(time.Now())}
	for k, v := range m.Metadata {
		if k != MetaKeyRetentionRule {
			out.Metadata[k] = v
		}
	}
	if c != nil {
		out.Metadata[MetaKeyRetentionRule] = c.Rule
	}
	for k, v := range m.Tags {
		out.Tags[k] = v
	}
	return out
}

// legacy adds the "meta.<k>" and "tag.<k>" keys of an earlier version's row.
func (m *ObjectMeta) legacy(fields map[string]json.RawMessage) error {
	for k, raw := range fields {
		dst := &m.Metadata
		s, ok := strings.CutPrefix(k, "meta.")
		if !ok {
			if s, ok = strings.CutPrefix(k, "tag."); !ok {
				continue
			}
			dst = &m.Tags
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[s] = v
	}
	return nil
}

// meta is the object metadata of a recording item's arguments.
func meta(args Args) ObjectMeta {
	switch a := args.(type) {
	case AgentArgs:
		return a.ObjectMeta
	case CMSArgs:
		return a.ObjectMeta
	case OIAPArgs:
		return a.ObjectMeta
	}
	return ObjectMeta{}
}

// withRetention is args stored under the retention choice c.
func withRetention(args Args, c *RetentionChoice) Args {
	switch a := args.(type) {
	case AgentArgs:
		a.Retention = c
		return a
	case CMSArgs:
		a.Retention = c
		return a
	case OIAPArgs:
		a.Retention = c
		return a
	}
	return args
}

// withArgs is it with the kind and the stored arguments of args.
func withArgs(it checkpoint.Item, args Args) (checkpoint.Item, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("%s arguments: %w", args.Kind(), err)
	}
	it.Kind, it.Args = args.Kind(), b
	return it, nil
}

// decodeArgs decodes the stored arguments of an item into the type of its
// kind. An agent item with members is a call-level CMS item. Rows written
// by earlier versions decode too (see the UnmarshalJSON methods).
func decodeArgs(it checkpoint.Item) (Args, error) {
	// Each item's arguments are decoded once per attempt, in one pass of the
	// JSON decoder into the type: the UnmarshalJSON methods are called
	// directly (json.Unmarshal would validate the bytes, then call them to
	// decode and validate again), and a CMS item is told from a row by its
	// "members" key (json.Marshal writes it as it is), not by a decode.
	var (
		args Args
		err  error
	)
	raw := it.Args
	switch it.Kind {
	case checkpoint.KindAgent:
		var cms CMSArgs
		found := false
		if len(raw) > 0 && bytes.Contains(raw, []byte(`"members"`)) {
			found, err = cms.decode(raw)
		}
		if found || err != nil {
			args = cms
			break
		}
		var a AgentArgs
		if len(raw) > 0 {
			err = a.UnmarshalJSON(raw)
		}
		args = a
	case checkpoint.KindTransfer, checkpoint.KindIVR:
		a := OIAPArgs{kind: it.Kind}
		if len(raw) > 0 {
			err = a.UnmarshalJSON(raw)
		}
		args = a
	case checkpoint.KindTransferLookup, checkpoint.KindIVRLookup:
		a := LookupArgs{kind: it.Kind}
		err = unmarshalArgs(raw, &a)
		args = a
	default:
		return nil, fmt.Errorf("jobs: item %d: unknown kind %q", it.ID, it.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %s %s: arguments: %w", it.Kind, it.UpstreamID, err)
	}
	return args, nil
}

// unmarshalArgs decodes raw into v; no arguments leave v as it is.
func unmarshalArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// UnmarshalJSON reads the arguments and the metadata keys of earlier
// versions.
func (a *AgentArgs) UnmarshalJSON(b []byte) error {
	type plain AgentArgs
	return unmarshalWithMeta(b, (*plain)(a), &a.ObjectMeta)
}

// UnmarshalJSON reads the arguments and, as earlier versions stored them,
// members as a string holding a JSON list and the metadata keys.
func (a *CMSArgs) UnmarshalJSON(b []byte) error {
	_, err := a.decode(b)
	return err
}

// decode is UnmarshalJSON that also reports whether b has a top-level
// "members" key (even null): what makes an agent item a CMS item.
func (a *CMSArgs) decode(b []byte) (found bool, err error) {
	type plain CMSArgs
	var w struct {
		*plain
		Members json.RawMessage `json:"members"`
	}
	w.plain = (*plain)(a)
	if err := unmarshalWithMeta(b, &w, &a.ObjectMeta); err != nil {
		return false, err
	}
	a.Members = nil
	found = w.Members != nil
	raw := bytes.TrimSpace(w.Members)
	if len(raw) == 0 {
		return found, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return found, fmt.Errorf("members: %w", err)
		}
		raw = []byte(s)
	}
	if err := json.Unmarshal(raw, &a.Members); err != nil {
		return found, fmt.Errorf("members %s: not a list of index rows: %w", raw, err)
	}
	return found, nil
}

// UnmarshalJSON reads the arguments and the metadata keys of earlier
// versions.
func (a *OIAPArgs) UnmarshalJSON(b []byte) error {
	type plain OIAPArgs
	return unmarshalWithMeta(b, (*plain)(a), &a.ObjectMeta)
}

// unmarshalWithMeta decodes b into v, then the "meta.<k>" and "tag.<k>"
// keys of an earlier version's row into om.
func unmarshalWithMeta(b []byte, v any, om *ObjectMeta) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	// Only rows of an earlier version have such keys (json.Marshal writes
	// a key's ASCII letters as they are).
	if !bytes.Contains(b, []byte(`"meta.`)) && !bytes.Contains(b, []byte(`"tag.`)) {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	return om.legacy(fields)
}

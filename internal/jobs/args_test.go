package jobs

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// TestDecodeArgs_OldRows: the params of rows written by earlier versions (a
// JSON object of strings, object metadata as "meta.<k>"/"tag.<k>" keys,
// members as a string holding a JSON list) decode into the typed arguments.
func TestDecodeArgs_OldRows(t *testing.T) {
	begin := time.Date(2026, 11, 1, 9, 59, 0, 0, time.FixedZone("", 8*3600))
	om := ObjectMeta{Metadata: map[string]string{"call-id": "c1", "agent-id": "a7"}, Tags: map[string]string{"tenant": "t"}}
	for _, tc := range []struct {
		name string
		it   checkpoint.Item
		want Args
	}{
		{"agent", checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "f1.wav", Args: json.RawMessage(`{"file_name":"f1.wav","original_file_name":"o1.wav",` +
			`"cc_id":"1","agent_id":"a7","vdn":"39","call_begin":"2026-11-01T09:59:00+08:00","meta.call-id":"c1","meta.agent-id":"a7","tag.tenant":"t"}`)},
			AgentArgs{FileName: "f1.wav", OriginalFileName: "o1.wav", CcID: "1", AgentID: "a7", VDN: "39", CallBegin: begin, ObjectMeta: om}},
		{"cms", checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "cms:c1", Args: json.RawMessage(`{"call_id":"c1","agent_id":"a7","vdn":"39",` +
			`"call_begin":"2026-11-01T09:59:00+08:00","members":"[\"f1.wav\",\"f2.wav\"]","meta.call-id":"c1","meta.agent-id":"a7","tag.tenant":"t"}`)},
			CMSArgs{CallID: "c1", AgentID: "a7", VDN: "39", CallBegin: begin, Members: []string{"f1.wav", "f2.wav"}, ObjectMeta: om}},
		{"transfer", checkpoint.Item{Kind: checkpoint.KindTransfer, UpstreamID: "9", Args: json.RawMessage(`{"record_path":"/r/9.wav","location_id":"L1",` +
			`"call_begin":"2026-11-01T09:59:00+08:00","vdn":"39","agent_id":"a7","meta.call-id":"c1","meta.agent-id":"a7","tag.tenant":"t"}`)},
			OIAPArgs{kind: checkpoint.KindTransfer, RecordPath: "/r/9.wav", LocationID: "L1", CallBegin: begin, VDN: "39", AgentID: "a7", ObjectMeta: om}},
		{"absent ivr", checkpoint.Item{Kind: checkpoint.KindIVR, UpstreamID: "5", Args: json.RawMessage(`{"call_begin":"2026-11-01T09:59:00+08:00"}`)},
			OIAPArgs{kind: checkpoint.KindIVR, CallBegin: begin}},
		{"agent with a members metadata key", checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "f1.wav", Args: json.RawMessage(`{"file_name":"f1.wav",` +
			`"call_begin":"2026-11-01T09:59:00+08:00","meta":{"members":"x"}}`)},
			AgentArgs{FileName: "f1.wav", CallBegin: begin, ObjectMeta: ObjectMeta{Metadata: map[string]string{"members": "x"}}}},
		{"cms with null members", checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "cms:c1", Args: json.RawMessage(`{"call_id":"c1",` +
			`"call_begin":"2026-11-01T09:59:00+08:00","members":null}`)},
			CMSArgs{CallID: "c1", CallBegin: begin}},
		{"lookup", checkpoint.Item{Kind: checkpoint.KindIVRLookup, UpstreamID: "c1", Args: json.RawMessage(`{"call_id":"c1","call_begin":"2026-11-01T09:59:00+08:00","vdn":"39","agent_id":"a7"}`)},
			LookupArgs{kind: checkpoint.KindIVRLookup, CallID: "c1", CallBegin: begin, VDN: "39", AgentID: "a7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeArgs(tc.it)
			if err != nil {
				t.Fatalf("decodeArgs: %v", err)
			}
			if !argsEqual(got, tc.want) {
				t.Fatalf("decodeArgs = %+v, want %+v", got, tc.want)
			}
			// Written again, the arguments decode to the same value.
			again, err := withArgs(tc.it, got)
			if err != nil {
				t.Fatal(err)
			}
			if again.Kind != tc.it.Kind {
				t.Fatalf("kind %q, want %q", again.Kind, tc.it.Kind)
			}
			if got2, err := decodeArgs(again); err != nil || !argsEqual(got2, tc.want) {
				t.Fatalf("new row %s decodes to %+v, %v; want %+v", again.Args, got2, err, tc.want)
			}
		})
	}
	t.Run("members not a list", func(t *testing.T) {
		_, err := decodeArgs(checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "cms:c1", Args: json.RawMessage(`{"call_id":"c1","members":"f1.wav"}`)})
		if err == nil {
			t.Fatal("members that are not a list decoded")
		}
	})
}

func argsEqual(a, b Args) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || a.Kind() != b.Kind() {
		return false
	}
	norm := func(x Args) Args {
		switch v := x.(type) {
		case AgentArgs:
			v.CallBegin = v.CallBegin.UTC()
			return v
		case CMSArgs:
			v.CallBegin = v.CallBegin.UTC()
			return v
		case OIAPArgs:
			v.CallBegin = v.CallBegin.UTC()
			return v
		case LookupArgs:
			v.CallBegin = v.CallBegin.UTC()
			return v
		}
		return x
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// oldParams is the params object an earlier version stored for it: every
// value a string, call_begin RFC3339 text, members a string holding a JSON
// list, object metadata as "meta.<k>" and "tag.<k>" keys.
func oldParams(t *testing.T, it checkpoint.Item) json.RawMessage {
	t.Helper()
	args, err := decodeArgs(it)
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]string{}
	rfc := func(b time.Time) string { return b.Format(time.RFC3339) }
	var m ObjectMeta
	switch a := args.(type) {
	case AgentArgs:
		maps.Copy(p, map[string]string{"file_name": a.FileName, "original_file_name": a.OriginalFileName, "cc_id": a.CcID,
			"agent_id": a.AgentID, "vdn": a.VDN, "call_begin": rfc(a.CallBegin)})
		m = a.ObjectMeta
	case CMSArgs:
		members, err := json.Marshal(a.Members)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(p, map[string]string{"call_id": a.CallID, "agent_id": a.AgentID, "vdn": a.VDN, "call_begin": rfc(a.CallBegin),
			"members": string(members)})
		m = a.ObjectMeta
	case OIAPArgs:
		if it.State == checkpoint.StateAbsent {
			p["call_begin"] = rfc(a.CallBegin)
			break
		}
		maps.Copy(p, map[string]string{"record_path": a.RecordPath, "location_id": a.LocationID, "call_begin": rfc(a.CallBegin),
			"vdn": a.VDN, "agent_id": a.AgentID})
		m = a.ObjectMeta
	case LookupArgs:
		maps.Copy(p, map[string]string{"call_id": a.CallID, "call_begin": rfc(a.CallBegin), "vdn": a.VDN, "agent_id": a.AgentID})
	}
	for k, v := range m.Metadata {
		p["meta."+k] = v
	}
	for k, v := range m.Tags {
		p["tag."+k] = v
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArchiver_OldRows: a state database written by an earlier version
// holds items whose params are the old string maps. Added that way to a
// fresh store, every item (agent recordings, call-level CMS downloads,
// transfer and IVR recordings, lookups) is processed as before: the same
// objects under the same keys with the same metadata.
func TestArchiver_OldRows(t *testing.T) {
	for _, method := range []string{config.MethodDownloadRecordFile, config.MethodDownloadRecord, config.MethodCMS} {
		t.Run(method, func(t *testing.T) {
			ctx := testCtx(t)
			opts := envOptions{archiver: func(a *Archiver) { a.Method = method }}
			ref := newEnv(t, opts)
			if _, err := ref.a.Once(ctx); err != nil {
				t.Fatalf("Once: %v", err)
			}
			want := ref.items()

			e := newEnv(t, opts)
			old := make([]checkpoint.Item, 0, len(want))
			kinds := map[string]bool{}
			for _, it := range want {
				o := checkpoint.Item{Kind: it.Kind, UpstreamID: it.UpstreamID, CallID: it.CallID, Day: it.Day, Key: it.Key,
					Args: oldParams(t, it), State: checkpoint.StatePending}
				if it.State == checkpoint.StateAbsent {
					o.State, o.Reason, o.Evidence = it.State, it.Reason, it.Evidence
				}
				if args, err := decodeArgs(it); err == nil {
					if _, ok := args.(CMSArgs); ok {
						kinds["cms"] = true
					}
				}
				kinds[it.Kind] = true
				old = append(old, o)
			}
			if _, err := e.store.AddItems(ctx, old); err != nil {
				t.Fatalf("AddItems: %v", err)
			}
			for _, k := range []string{checkpoint.KindAgent, checkpoint.KindTransfer, checkpoint.KindIVR, checkpoint.KindTransferLookup, checkpoint.KindIVRLookup} {
				if !kinds[k] {
					t.Fatalf("no %s item: the test proves little", k)
				}
			}
			if method == config.MethodCMS && !kinds["cms"] {
				t.Fatal("no call-level CMS item")
			}
			if _, err := e.a.Once(ctx); err != nil {
				t.Fatalf("Once over old rows: %v", err)
			}
			got := itemsByID(e.items())
			withMeta := 0
			for _, w := range want {
				g, ok := got[w.Kind+"\x00"+w.UpstreamID]
				if !ok {
					t.Errorf("%s %s: gone", w.Kind, w.UpstreamID)
					continue
				}
				if g.State != w.State || g.Key != w.Key || g.Size != w.Size || g.SHA256 != w.SHA256 {
					t.Errorf("%s %s: %s key %q size %d sha %s (%s); want %s key %q size %d sha %s",
						w.Kind, w.UpstreamID, g.State, g.Key, g.Size, g.SHA256, g.LastError, w.State, w.Key, w.Size, w.SHA256)
				}
				if w.State != checkpoint.StateDone || w.Key == "" {
					continue
				}
				wo, err := ref.dir.Stat(context.Background(), w.Key)
				if err != nil {
					t.Fatal(err)
				}
				go1, err := e.dir.Stat(context.Background(), w.Key)
				if err != nil {
					t.Errorf("%s %s: %v", w.Kind, w.UpstreamID, err)
					continue
				}
				if !metaEqual(go1, wo) {
					t.Errorf("%s %s: metadata %v tags %v, want %v %v", w.Kind, w.UpstreamID, go1.Metadata, go1.Tags, wo.Metadata, wo.Tags)
				}
				if len(wo.Metadata) > 0 {
					withMeta++
				}
			}
			if withMeta == 0 {
				t.Error("no recording stored with metadata: the test proves little")
			}
			if a, b := recordingObjects(e.objects()), recordingObjects(ref.objects()); !maps.Equal(a, b) {
				t.Errorf("recording objects differ: %d stored from old rows, %d by the reference run", len(a), len(b))
			}
		})
	}
}

func metaEqual(a, b sink.Object) bool {
	return maps.Equal(a.Metadata, b.Metadata) && maps.Equal(a.Tags, b.Tags)
}

package cecsim

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// bodyFaultKinds are the faults that act on a handler's answer, in the order
// ServeHTTP offers them to pickFault (the rules' order decides).
var bodyFaultKinds = []FaultKind{
	FaultReset, FaultTruncate, FaultSlow,
	FaultTextBody, FaultJSONNoCode, FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle,
}

// isMisbehaviour reports whether k is a recording-download misbehaviour that
// misbehave builds (rather than a transport fault that send applies).
func isMisbehaviour(k FaultKind) bool {
	switch k {
	case FaultTextBody, FaultJSONNoCode, FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle:
		return true
	}
	return false
}

// misbehaviourFits reports whether fault kind k can act on rep: text_body and
// json_no_code on any file answer, the WAV ones on a single dataset recording,
// the transport faults on anything.
func misbehaviourFits(k FaultKind, rep *reply) bool {
	switch k {
	case FaultTextBody, FaultJSONNoCode:
		return rep.status == http.StatusOK && rep.header.Get("Content-Type") == cecwire.ContentTypeOctetStream
	case FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle:
		return rep.rec != nil
	}
	return true
}

// misbehave turns rep, a file answer, into the misbehaviour f. ctx is the
// request's: the endless bodies stop when it ends.
func (s *Server) misbehave(ctx context.Context, f Fault, rep *reply) *reply {
	out := &reply{status: http.StatusOK, header: rep.header.Clone(), size: rep.size, body: rep.body}
	switch f.Kind {
	case FaultTextBody, FaultJSONNoCode:
		b := []byte(textBodyError)
		if f.Kind == FaultJSONNoCode {
			b = []byte(jsonNoCodeBody)
		}
		out.size = int64(len(b))
		out.body = func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		}
	case FaultRIFFShort:
		out.size = rep.size / 2
		out.body = func(w io.Writer) error { return rep.body(&cutWriter{w: w, left: out.size}) }
	case FaultRIFFLong:
		out.size = rep.size + riffLongJunk
		out.body = func(w io.Writer) error {
			if err := rep.body(w); err != nil {
				return err
			}
			_, err := io.CopyN(w, newJunk(rep.rec.seed), riffLongJunk)
			return err
		}
	case FaultGzip:
		// Compress twice rather than hold the file: gzip output is deterministic.
		var n countWriter
		if err := gzipTo(&n, rep.body); err != nil {
			return statusReply(http.StatusInternalServerError, "cecsim: gzip: "+err.Error())
		}
		out.header.Set("Content-Encoding", "gzip")
		out.size = int64(n)
		out.body = func(w io.Writer) error { return gzipTo(w, rep.body) }
	case FaultEndless, FaultHuge:
		rec := rep.rec
		limit := int64(math.MaxInt64)
		out.size = -1
		if f.Kind == FaultHuge {
			limit, out.size = hugeLength, hugeLength
		}
		out.body = func(w io.Writer) error {
			defer s.streaming()()
			return copyCtx(ctx, w, io.LimitReader(newOversizeWAV(rec.bank, rec.seed), limit))
		}
	case FaultTrickle:
		delay := time.Duration(f.DelayMS) * time.Millisecond
		if f.DelayMS == 0 {
			delay = defaultTrickleDelay
		}
		out.body = func(w io.Writer) error {
			defer s.streaming()()
			tw := &trickleWriter{ctx: ctx, w: w, delay: delay}
			if rw, ok := w.(http.ResponseWriter); ok {
				tw.rc = http.NewResponseController(rw)
			}
			return rep.body(tw)
		}
	}
	return out
}

// streaming counts a running endless, huge or trickle body; call the result when it ends.
func (s *Server) streaming() func() {
	s.streams.Add(1)
	return func() { s.streams.Add(-1) }
}

// gzipTo writes body gzipped to w.
func gzipTo(w io.Writer, body func(io.Writer) error) error {
	zw := gzip.NewWriter(w)
	if err := body(zw); err != nil {
		return err
	}
	return zw.Close()
}

// copyCtx copies src to w until src ends, a write fails or ctx ends.
func copyCtx(ctx context.Context, w io.Writer, src io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// newOversizeWAV is an endless A-law WAV stream whose header claims the largest
// sizes a RIFF header can hold.
func newOversizeWAV(bank *audioBank, seed uint64) *wavStream {
	w := newWAVStream(bank, math.MaxInt64, seed)
	binary.LittleEndian.PutUint32(w.hdr[4:], math.MaxUint32)
	binary.LittleEndian.PutUint32(w.hdr[40:], math.MaxUint32-(wavHeaderSize-8))
	return w
}

// junk is a deterministic stream of bytes that are no audio in particular.
type junk struct{ g toneGen }

func newJunk(seed uint64) *junk {
	j := &junk{}
	j.g.rng = seed ^ 0x6a756e6b | 1
	return j
}

func (j *junk) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(j.g.next() >> 56)
	}
	return len(p), nil
}

// trickleWriter sends one byte at a time, flushing each and waiting delay before the next.
type trickleWriter struct {
	ctx   context.Context
	rc    *http.ResponseController
	w     io.Writer
	delay time.Duration
	sent  bool
}

func (t *trickleWriter) Write(p []byte) (int, error) {
	for i := range p {
		if t.sent && !sleepCtx(t.ctx, t.delay) {
			return i, t.ctx.Err()
		}
		if _, err := t.w.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if t.rc != nil {
			if err := t.rc.Flush(); err != nil {
				return i, err
			}
		}
		t.sent = true
	}
	return len(p), nil
}

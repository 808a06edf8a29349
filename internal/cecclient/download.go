package cecclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Download is a file being received. The caller must read Body to the end
// and Close it. Body is never buffered as a whole: it streams from the
// network. A read error (reset, stall, truncation, a rate below
// Options.MinRate) is returned by Body.Read and classifies as Transient; a
// body shorter than its Content-Length ends in io.ErrUnexpectedEOF, never in
// io.EOF. A recording body that streams past Options.MaxRecordingBytes fails
// with ErrTooLarge (Permanent).
type Download struct {
	Body        io.ReadCloser
	ContentType string
	Length      int64  // Content-Length, -1 if unknown
	FileName    string // from Content-Disposition, else the base of the requested name
	Zip         bool   // the body starts with PK\x03\x04 (several recordings in one ZIP)
}

const (
	sniffHead = 512      // bytes peeked to recognise ZIP, JSON and HTML
	sniffJSON = 64 << 10 // a body that starts like JSON is inspected up to this size
	// The read buffer of every download: the sniffing peek's. A caller's
	// larger reads pass it by (the connection has its own buffer below), so
	// it need hold no more; at 4 KiB it was the largest allocation of a
	// small recording's download.
	sniffBuf = sniffHead
)

var zipMagic = []byte("PK\x03\x04")

// download runs rq and hands out the file. Retries happen only while no
// body has been handed out.
func (c *Client) download(ctx context.Context, rq *request, fallbackName string) (*Download, error) {
	var d *Download
	err := c.do(ctx, rq, func(resp *http.Response) error {
		got, err := c.inspectDownload(rq, resp, fallbackName)
		if err != nil {
			return err
		}
		d = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// inspectDownload tells a file from a JSON error (CC-FS answers its errors
// with HTTP 200) by Content-Type and by the first bytes.
func (c *Client) inspectDownload(rq *request, resp *http.Response, fallbackName string) (*Download, error) {
	if rq.maxBody > 0 && resp.ContentLength > rq.maxBody {
		return nil, fmt.Errorf("%w: Content-Length %d is above the limit of %d bytes", ErrTooLarge, resp.ContentLength, rq.maxBody)
	}
	// The minimum rate applies from the first byte: the sniffing peek
	// below waits for sniffHead bytes, which a trickle would make last for
	// minutes.
	var raw io.Reader = resp.Body
	if c.o.MinRate > 0 {
		raw = &rateGuard{r: resp.Body, c: resp.Body, m: newRateMeter(c.o.MinRate, c.o.MinRateWindow)}
	}
	// A small buffer for every download (a recording's body is then read
	// past it without copies, in the caller's chunks); only a body that
	// starts like JSON gets a sniffJSON one, below. A sniffJSON buffer per
	// download was a third of the bytes allocated on 8 KiB recordings.
	br := bufio.NewReaderSize(raw, sniffBuf)
	head, err := br.Peek(sniffHead)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(head) == 0 {
		if resp.ContentLength > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, ErrEmptyBody
	}
	if err == io.EOF && resp.ContentLength > int64(len(head)) {
		return nil, io.ErrUnexpectedEOF
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	mt = strings.ToLower(mt)
	start := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case bytes.HasPrefix(head, zipMagic) || bytes.HasPrefix(head, []byte("RIFF")):
		// A ZIP or a WAV, whatever the Content-Type says.
	case mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
		b, err := readJSON(io.NopCloser(br), c.o.MaxJSONBytes)
		if err != nil {
			return nil, err
		}
		if ae := jsonDownloadError(rq, resp.StatusCode, b); ae != nil {
			return nil, ae
		}
		return nil, &APIError{Service: rq.service, Op: rq.op, HTTPStatus: resp.StatusCode, Desc: "JSON answer without resultCode"}
	case len(start) > 0 && start[0] == '{':
		// Mislabelled JSON error? Only a small, complete JSON object with a
		// result code counts; anything else is handed out as a file.
		br = bufio.NewReaderSize(br, sniffJSON) // reads on from what br holds
		all, err := br.Peek(sniffJSON)
		switch {
		case err == io.EOF:
			if ae := jsonDownloadError(rq, resp.StatusCode, all); ae != nil {
				return nil, ae
			}
		case err != nil && !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		}
	case mt == "text/html" || looksHTML(start):
		return nil, fmt.Errorf("%w: HTML page (Content-Type %q)", ErrUnexpectedContent, truncate(ct, 64))
	}
	return &Download{
		Body:        &downloadBody{r: br, c: resp.Body, want: resp.ContentLength, max: rq.maxBody, rq: rq},
		ContentType: ct,
		Length:      resp.ContentLength,
		FileName:    dispositionName(resp.Header.Get("Content-Disposition"), fallbackName),
		Zip:         bytes.HasPrefix(head, zipMagic),
	}, nil
}

// jsonDownloadError returns the *APIError a JSON answer of a download
// interface stands for, or nil when b is not such an answer.
func jsonDownloadError(rq *request, status int, b []byte) *APIError {
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil {
		return nil
	}
	code, desc, ok := eb.code()
	if !ok {
		return nil
	}
	if code == cecwire.CodeSuccess || code == cecwire.CodeSuccessCMS {
		desc = "success code but no file"
	}
	return &APIError{Service: rq.service, Op: rq.op, HTTPStatus: status, ResultCode: code, Desc: desc}
}

func looksHTML(b []byte) bool {
	if len(b) == 0 || b[0] != '<' {
		return false
	}
	l := bytes.ToLower(b[:min(len(b), 256)])
	return bytes.HasPrefix(l, []byte("<!doctype html")) || bytes.Contains(l, []byte("<html")) || bytes.Contains(l, []byte("<head")) || bytes.Contains(l, []byte("<body"))
}

// dispositionName is the file name of Content-Disposition, else the base of
// fallback; only a plain base name survives ("" if none does).
func dispositionName(cd, fallback string) string {
	if cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil {
			if n := safeBase(params["filename"]); n != "" {
				return n
			}
		}
	}
	return safeBase(fallback)
}

// safeBase returns the last element of an upstream path (either separator)
// or "" when that is not a plain, printable file name.
func safeBase(s string) string {
	s = strings.ReplaceAll(s, `\`, "/")
	if s == "" || strings.HasSuffix(s, "/") {
		return ""
	}
	b := path.Base(s)
	if b == "." || b == ".." || b == "/" || strings.Contains(b, ":") || checkText("name", b, 255) != nil {
		return ""
	}
	return b
}

// downloadBody streams the body out of the sniffing buffer. It turns a body
// that ends before its Content-Length into io.ErrUnexpectedEOF, fails one
// that passes max with ErrTooLarge, and cancels one that arrives slower than
// rate allows with ErrTooSlow.
type downloadBody struct {
	r    *bufio.Reader
	c    io.Closer
	n    int64
	want int64
	max  int64    // 0: no bound
	rq   *request // names the download in errors
	err  error
}

func (d *downloadBody) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.max > 0 && int64(len(p)) > d.max-d.n+1 {
		p = p[:d.max-d.n+1] // one byte beyond max tells that the body goes on
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	switch {
	case d.max > 0 && d.n > d.max:
		n -= int(d.n - d.max)
		d.n = d.max
		err = fmt.Errorf("%w: body passed the limit of %d bytes", ErrTooLarge, d.max)
	case err == io.EOF && d.want >= 0 && d.n < d.want:
		err = fmt.Errorf("body ended after %d of %d bytes: %w", d.n, d.want, io.ErrUnexpectedEOF)
	case err == nil && d.want >= 0 && d.n > d.want:
		err = fmt.Errorf("body longer than its Content-Length %d", d.want)
	}
	if err != nil && err != io.EOF {
		err = d.rq.wrap(fmt.Errorf("read body: %w", err))
	}
	if err != nil {
		d.err = err
	}
	return n, err
}

func (d *downloadBody) Close() error { return d.c.Close() }

// rateGuard fails the raw body with ErrTooSlow once it arrives slower than
// the meter allows, and closes it, which cancels the transfer.
type rateGuard struct {
	r io.Reader
	c io.Closer
	m *rateMeter
}

func (g *rateGuard) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := g.r.Read(p)
	if err == nil && g.m.tooSlow(time.Since(start), n) {
		g.c.Close()
		return n, fmt.Errorf("%w: slower than %d B/s over %s", ErrTooSlow, g.m.min, g.m.window)
	}
	return n, err
}

// rateMeter tells whether a body arrives slower than min bytes per second on
// average over any window of time spent inside Read. It keeps a mark every
// window/8, so a window is measured to within an eighth of its length.
type rateMeter struct {
	min    int64
	window time.Duration
	busy   time.Duration // time spent inside Read so far
	bytes  int64
	marks  []rateMark // oldest first; the first is at most a window ago once one has passed
}

type rateMark struct {
	busy  time.Duration
	bytes int64
}

func newRateMeter(minRate int64, window time.Duration) *rateMeter {
	return &rateMeter{min: minRate, window: window, marks: []rateMark{{}}}
}

// tooSlow accounts for one Read that took busy and brought n bytes.
func (m *rateMeter) tooSlow(busy time.Duration, n int) bool {
	m.busy += busy
	m.bytes += int64(n)
	for len(m.marks) >= 2 && m.busy-m.marks[1].busy >= m.window {
		m.marks = m.marks[1:]
	}
	if first := m.marks[0]; m.busy-first.busy >= m.window {
		span := m.busy - first.busy
		if float64(m.bytes-first.bytes) < float64(m.min)*span.Seconds() {
			return true
		}
	}
	if last := m.marks[len(m.marks)-1]; m.busy-last.busy >= m.window/8 {
		m.marks = append(m.marks, rateMark{m.busy, m.bytes})
	}
	return false
}

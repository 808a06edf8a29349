package jobs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// encodeLedger writes l as json.Marshal would (indent: as
// json.MarshalIndent(l, "", " ") would), byte for byte, without ever
// holding the whole text: the ledger is marshalled without its calls, then
// the calls are written one at a time where their array stands. Held at
// once, a day's ledger text (twice: the content digest's compact form, then
// the stored indented one) was most of what the end of a pass cost in
// memory, and it grows with the calls of the day.
func encodeLedger(w io.Writer, l *Ledger, indent bool) error {
	marshal := json.Marshal
	if indent {
		marshal = func(v any) ([]byte, error) { return json.MarshalIndent(v, "", " ") }
	}
	if len(l.Calls) == 0 { // nothing to spare, and nil calls are null
		b, err := marshal(l)
		if err == nil {
			_, err = w.Write(b)
		}
		return err
	}
	shell := *l
	shell.Calls = []LedgerCall{}
	head, err := marshal(&shell)
	if err != nil {
		return err
	}
	at, err := topLevelValue(head, "calls")
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(head[at:], []byte("[]")) {
		return fmt.Errorf("ledger: calls marshalled as %.10q", head[at:])
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head[:at+1])
	for i := range l.Calls {
		if i > 0 {
			bw.WriteByte(',')
		}
		var b []byte
		if indent {
			// An element of the array at depth 2, its lines at depth 3.
			bw.WriteString("\n  ")
			b, err = json.MarshalIndent(&l.Calls[i], "  ", " ")
		} else {
			b, err = json.Marshal(&l.Calls[i])
		}
		if err != nil {
			return fmt.Errorf("ledger: call %s: %w", l.Calls[i].CallID, err)
		}
		bw.Write(b)
	}
	if indent {
		bw.WriteString("\n ")
	}
	bw.Write(head[at+1:])
	return bw.Flush()
}

// topLevelValue is the offset in the JSON object doc of the value of its
// member name.
func topLevelValue(doc []byte, name string) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, fmt.Errorf("ledger: not an object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return 0, fmt.Errorf("ledger: %w", err)
		}
		if t == name {
			off := int(dec.InputOffset())
			i := bytes.IndexByte(doc[off:], ':')
			if i < 0 {
				return 0, errors.New("ledger: no value after " + name)
			}
			off += i + 1
			for off < len(doc) && (doc[off] == ' ' || doc[off] == '\n') {
				off++
			}
			return off, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0, fmt.Errorf("ledger: %w", err)
		}
	}
	return 0, errors.New("ledger: no member " + name)
}

// ledgerDigest is the SHA-256, hex, of l's compact JSON (its content
// digest, computed before its generation time and link are set).
func ledgerDigest(l *Ledger) (string, error) {
	h := sha256.New()
	if err := encodeLedger(h, l, false); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ledgerFile is a ledger's indented JSON in a file of the spool
// directory, removed from it at once where the system allows.
type ledgerFile struct {
	f      *os.File
	drop   func() // closes f (createSpool)
	size   int64
	sha256 string
}

// writeLedgerFile writes l's indented JSON into a new file of dir, and
// leaves it at its start; the caller closes it.
func writeLedgerFile(dir string, l *Ledger) (*ledgerFile, error) {
	f, drop, err := createSpool(dir, "ledger-*.json")
	if err != nil {
		return nil, err
	}
	lf := &ledgerFile{f: f, drop: drop}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = encodeLedger(cw, l, true)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		lf.close()
		return nil, err
	}
	lf.size, lf.sha256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return lf, nil
}

func (lf *ledgerFile) close() { lf.drop() }

// countWriter counts what it writes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

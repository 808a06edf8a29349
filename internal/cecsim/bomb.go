package cecsim

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/csv"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// badRow is a row like the last of rows (or like one of the developer's
// calls) with call_id, column 5 of both CSV kinds, empty.
func (s *Server) badRow(ak string, record bool, rows [][]string) []string {
	var row []string
	if len(rows) > 0 {
		row = slices.Clone(rows[len(rows)-1])
	}
	for _, c := range s.ds.calls {
		if row != nil {
			break
		}
		if c.ak != ak {
			continue
		}
		if !record {
			row = s.cdrRows(c)[0]
		} else if r := s.recordRows(c, nil); len(r) > 0 {
			row = r[0]
		}
	}
	if row == nil {
		cols := cecwire.CallColumns
		if record {
			cols = cecwire.RecordColumns
		}
		row = make([]string, len(cols))
		row[0], row[1], row[2] = ak, s.o.TenantID, "1"
	}
	row[4] = ""
	return row
}

// zipBomb returns the zip_bomb package, built once.
func (s *Server) zipBomb() ([]byte, error) {
	s.bombOnce.Do(func() {
		var row []string
		for _, c := range s.ds.calls {
			if r := s.recordRows(c, nil); len(r) > 0 {
				row = r[0]
				break
			}
		}
		if row == nil {
			row = s.badRow("", true, nil)
			row[4] = "1700000000-10000"
		}
		// Empty trailing columns, which §3.3 says to keep, are runs of one
		// byte: they take the ratio from ~300 to ~900 (about 5 MB for 4 GiB).
		// No header row: it would have fewer columns than the rows.
		row = append(slices.Clone(row), make([]string, bombPadColumns)...)
		start := s.o.Start.In(s.o.Location)
		name := strings.Replace(start.Format("20060102150405.000"), ".", "", 1) + "000_record_1.csv"
		s.bomb, s.bombErr = buildZipBomb(name, nil, row, zipBombSize)
	})
	return s.bomb, s.bombErr
}

// bombChunk is the uncompressed size of the block that the bomb repeats; it must
// be larger than the deflate window (32 KiB).
const bombChunk = 1 << 20

// bombPadColumns is the number of empty columns after the 18 of a bomb row.
const bombPadColumns = 16000

// buildZipBomb writes a ZIP with one deflated entry, name, that inflates to the
// CSV header (none if nil) followed by row repeated until at least size bytes. It never
// compresses more than a few MiB: deflate blocks that end in a sync flush are
// byte-aligned, and a block that only refers back into a periodic history
// decodes the same after any whole number of periods, so one compressed
// chunk is simply repeated.
func buildZipBomb(name string, header, row []string, size int64) ([]byte, error) {
	line := func(rec []string) []byte {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write(rec) // writes to a buffer cannot fail
		w.Flush()
		return b.Bytes()
	}
	var hdr []byte
	if header != nil {
		hdr = line(header)
	}
	one := line(row)
	perChunk := (bombChunk + len(one) - 1) / len(one)
	chunk := bytes.Repeat(one, perChunk)
	rowsNeeded := (size - int64(len(hdr)) + int64(len(one)) - 1) / int64(len(one))
	reps := (rowsNeeded - int64(perChunk)) / int64(perChunk) // chunks after the first
	tail := bytes.Repeat(one, int(rowsNeeded-int64(perChunk)-reps*int64(perChunk)))

	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	part := func(data []byte, last bool) ([]byte, error) {
		buf.Reset()
		if _, err := fw.Write(data); err != nil {
			return nil, err
		}
		if last {
			err = fw.Close()
		} else {
			err = fw.Flush()
		}
		return bytes.Clone(buf.Bytes()), err
	}
	first, err := part(append(slices.Clone(hdr), chunk...), false)
	if err != nil {
		return nil, err
	}
	middle, err := part(chunk, false)
	if err != nil {
		return nil, err
	}
	end, err := part(tail, true)
	if err != nil {
		return nil, err
	}

	crc := crc32.Update(crc32.Update(0, crc32.IEEETable, hdr), crc32.IEEETable, chunk)
	for range reps {
		crc = crc32.Update(crc, crc32.IEEETable, chunk)
	}
	crc = crc32.Update(crc, crc32.IEEETable, tail)

	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	fh := &zip.FileHeader{
		Name:               name,
		Method:             zip.Deflate,
		CRC32:              crc,
		CompressedSize64:   uint64(len(first)) + uint64(reps)*uint64(len(middle)) + uint64(len(end)),
		UncompressedSize64: uint64(len(hdr)) + uint64(rowsNeeded)*uint64(len(one)),
	}
	fh.ModifiedDate, fh.ModifiedTime = msDosTime(fixedZipTime)
	w, err := zw.CreateRaw(fh)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(first); err != nil {
		return nil, err
	}
	for range reps {
		if _, err := w.Write(middle); err != nil {
			return nil, err
		}
	}
	if _, err := w.Write(end); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

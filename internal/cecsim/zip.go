package cecsim

import (
	"archive/zip"
	"io"
	"time"
)

// writeRecordingsZip writes a ZIP of recordings, named by zipMemberNames, with the Store method, CRC and
// sizes known up front (no data descriptors) and fixed modification times, so
// the same recordings always give the same bytes. With data false every file is
// zeros of the same length: the dry run that measures Content-Length.
func writeRecordingsZip(w io.Writer, recs []*recording, data bool) error {
	zw := zip.NewWriter(w)
	names := zipMemberNames(recs)
	for i, r := range recs {
		fh := &zip.FileHeader{
			Name:               names[i],
			Method:             zip.Store,
			CRC32:              r.crc,
			CompressedSize64:   uint64(r.size),
			UncompressedSize64: uint64(r.size),
		}
		fh.ModifiedDate, fh.ModifiedTime = msDosTime(r.call.begin.UTC())
		fw, err := zw.CreateRaw(fh)
		if err != nil {
			return err
		}
		var src io.Reader = io.LimitReader(zeros{}, r.size)
		if data {
			src = r.open()
		}
		if _, err := io.Copy(fw, src); err != nil {
			return err
		}
	}
	return zw.Close()
}

// recordingsZipSize is the exact size writeRecordingsZip produces.
func recordingsZipSize(recs []*recording) int64 {
	var c countWriter
	_ = writeRecordingsZip(&c, recs, false) // writes to a counter cannot fail
	return int64(c)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// msDosTime encodes t (from 1980 on) as MS-DOS date and time.
func msDosTime(t time.Time) (date, tm uint16) {
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}

// fixedZipTime is the modification time of the zip_bomb entry.
var fixedZipTime = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

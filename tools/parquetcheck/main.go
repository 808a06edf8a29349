// Command parquetcheck runs SQL in DuckDB, an implementation of Parquet
// independent of the archiver's (parquet-go), and prints the result as JSON
// Lines: a first line {"columns": [...], "types": [...]}, then one JSON array
// per row. The archiver's tests read its Parquet files back through it.
//
//	parquetcheck "SELECT * FROM read_parquet('x.parquet')"
//
// Values: VARCHAR as a JSON string, NULL as null, integers as numbers,
// timestamps as RFC 3339 strings in UTC with nanoseconds, lists as arrays;
// anything else as its Go formatting in a string.
//
// It is its own module (tools/parquetcheck/go.mod) with cgo: DuckDB never
// enters the archiver's go.mod. It imports nothing of the archiver.
package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: parquetcheck SQL")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "parquetcheck:", err)
		os.Exit(1)
	}
}

func run(query string) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	types := make([]string, len(cts))
	for i, ct := range cts {
		types[i] = ct.DatabaseTypeName()
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string][]string{"columns": cols, "types": types}); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = jsonValue(v)
		}
		if err := enc.Encode(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return out.Flush()
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case []byte:
		return fmt.Sprintf("bytes:%x", x)
	default:
		return fmt.Sprintf("%T:%v", x, x)
	}
}

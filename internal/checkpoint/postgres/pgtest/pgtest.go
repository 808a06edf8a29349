// Package pgtest gives tests a PostgreSQL database of their own on the
// server named by ARCHIVER_TEST_POSTGRES_DSN (a superuser's), which
// scripts/test.sh starts with scripts/postgres.sh. Without it the tests that
// need one skip, saying how to get one; .ci/required-tests turns those skips
// into failures.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Env names the test server's superuser DSN.
const Env = "ARCHIVER_TEST_POSTGRES_DSN"

// ServerDSN returns the test server's DSN, or skips the test when there is
// none.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		t.Skipf("%s is not set: start a throwaway server with `eval \"$(scripts/postgres.sh start)\"` (scripts/test.sh does)", Env)
	}
	return dsn
}

// WithDatabase returns dsn with its database replaced by db.
func WithDatabase(t testing.TB, dsn, db string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s does not parse as a URL", Env)
		}
		u.Path = "/" + db
		return u.String()
	}
	// keyword=value: a later key wins.
	return dsn + " dbname=" + db
}

// NewDatabase creates an empty database on the test server, dropped (with
// its connections ended) when the test ends, and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := ServerDSN(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "cptest_" + hex.EncodeToString(b)
	Exec(t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("connect to drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return WithDatabase(t, admin, name)
}

// Exec runs statements on dsn directly, as an operator would.
func Exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements, kept for the life of the store.
//
// The store has one connection, and every statement run inside a
// transaction was prepared anew in it: SQLite's parser and planner were 40 %
// of a claim's CPU (the claim is a union of three index reads). The
// statements the hot paths run (Claim, the group commit's transitions) are
// prepared once on the connection and bound to each transaction with
// Tx.StmtContext, which reuses the connection's prepared statement.
//
// A statement can only be prepared outside a transaction (the one
// connection is the transaction's until it ends), so a statement first met
// inside one is prepared in it and remembered; learn prepares it for next
// time once the transaction is over.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns q's cached statement, or nil.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// prepare returns q's statement, preparing it on db first if needed. It must
// not be called inside a transaction of db's one connection.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	if st := c.get(q); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[q]; old != nil {
		st.Close()
		return old, nil
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

// learn prepares the statements met inside a transaction that just ended.
// A failure only leaves them to be prepared in the next transaction again.
func (c *stmtCache) learn(ctx context.Context, db *sql.DB, qs []string) {
	for _, q := range qs {
		if _, err := c.prepare(ctx, db, q); err != nil {
			return
		}
	}
}

// close closes every cached statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

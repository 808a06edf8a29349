// Package archtest holds the architecture tests of the module: the import
// floor (which of the archiver's packages may import which) checked against
// `go list`. It has no code of its own.
package archtest

// Package archtest holds the architecture tests of the module: the import
// floor (which of the archiver's packages may import which) checked against
// `go list`, and that the commands count no metric inline (type-checked).
// It has no code of its own; testdata/ holds deliberately broken packages.
package archtest

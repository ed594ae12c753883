package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// outputJSON writes v to stdout as one line of JSON (encoding/json's Encoder, trailing
// newline), as every -j output of the established tool. A nil slice prints null. It returns
// the values an action returns.
func (inv *invocation) outputJSON(v any) (int, error) {
	if err := json.NewEncoder(inv.stdout).Encode(v); err != nil {
		return 1, err
	}
	return 0, nil
}

// nilIfEmpty makes an empty list print as null, as the established tool's lists do.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// printf writes a result line to stdout.
func (inv *invocation) printf(format string, a ...any) {
	fmt.Fprintf(inv.stdout, format, a...)
}

// eprintf writes to stderr; only for errors and the lines the established tool prints there.
func (inv *invocation) eprintf(format string, a ...any) {
	fmt.Fprintf(inv.stderr, format, a...)
}

// printPairs writes key/value pairs as "Key: value" lines (status and version, to stderr).
func printPairs(w io.Writer, pairs [][2]string) {
	for _, p := range pairs {
		fmt.Fprintf(w, "%s: %s\n", p[0], p[1])
	}
}

// printNamed writes an ID and then each name prefixed with a tab, the plain output of the
// create-* commands.
func (inv *invocation) printNamed(id string, names []string) {
	inv.printf("%s\n", id)
	for _, n := range names {
		inv.printf("\t%s\n", n)
	}
}

// uniqueArgs returns args without repetitions, in first-seen order. The established tool keeps
// per-argument results in a map, so a repeated argument is reported once.
func uniqueArgs(args []string) []string {
	seen := make(map[string]bool, len(args))
	out := make([]string, 0, len(args))
	for _, a := range args {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// errorText is err's text, or "" for nil (the "error" fields of JSON outputs).
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

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

// printCreated ends the create-* commands: with -j the created item v as JSON, else its ID and
// then each name prefixed with a tab.
func (inv *invocation) printCreated(v any, id string, names []string) (int, error) {
	if inv.flags.json {
		return inv.outputJSON(v)
	}
	inv.printf("%s\n", id)
	inv.printEach("\t%s\n", names)
	return 0, nil
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

// printEach writes one line per item, format holding one %s ("\tname: %s\n").
func (inv *invocation) printEach(format string, items []string) {
	for _, item := range items {
		inv.printf(format, item)
	}
}

// printList ends the plain list commands: the error if err is set, else with -j the list as
// JSON (null when empty), else one item per line.
func (inv *invocation) printList(items []string, err error) (int, error) {
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(items))
	}
	inv.printEach("%s\n", items)
	return 0, nil
}

// matchAll looks every argument up and returns what was found, in argument order; an argument
// that matches nothing is left out (the commands that examine items skip it silently).
func matchAll[T any](args []string, lookup func(ref string) (T, error)) []T {
	matched := []T{}
	for _, arg := range args {
		if item, err := lookup(arg); err == nil {
			matched = append(matched, item)
		}
	}
	return matched
}

// report ends the commands that handle each argument in turn: with -j it writes v as JSON,
// else text prints the plain output; the exit code is 1 if failed, with no error (what failed
// has been reported already).
func (inv *invocation) report(v any, failed bool, text func()) (int, error) {
	if inv.flags.json {
		if code, err := inv.outputJSON(v); err != nil {
			return code, err
		}
	} else {
		text()
	}
	if failed {
		return 1, nil
	}
	return 0, nil
}

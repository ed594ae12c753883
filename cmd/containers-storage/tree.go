package main

import (
	"fmt"
	"io"
	"strings"
)

// treeNode is one edge of the `layers -t` tree: the layer id under parent, with note lines.
type treeNode struct {
	parent, id string
	notes      []string
}

const (
	treeIndentStep = 2
	treeVertical   = '│'
	treeMore       = "├"
	treeLast       = "└"
	treeStem       = "─"
)

// treeRoot picks the root to print next: a parent that is not itself a child, preferring the
// one with the fewest children (ties broken by name, so the output is stable).
func treeRoot(nodes []treeNode) string {
	isChild := map[string]bool{}
	children := map[string]int{}
	for _, n := range nodes {
		isChild[n.id] = true
		children[n.parent]++
	}
	best := ""
	for p, count := range children {
		if isChild[p] {
			continue
		}
		if best == "" || count < children[best] || (count == children[best] && p < best) {
			best = p
		}
	}
	return best
}

// printTree prints every tree of nodes: the root on its own line, then each child indented
// with box-drawing connectors, notes under their layer. Nodes that hang off no root (a cycle)
// are not printed.
func printTree(w io.Writer, nodes []treeNode) {
	for len(nodes) > 0 {
		root := treeRoot(nodes)
		if root == "" {
			return
		}
		fmt.Fprintf(w, "%s\n", root)
		before := len(nodes)
		nodes = printSubtree(w, root, nodes, 0, nil)
		if len(nodes) == before {
			return
		}
	}
}

// printSubtree prints the children of parent at the given indent, where continued lists the
// columns that still carry a vertical line, and returns the nodes not printed.
func printSubtree(w io.Writer, parent string, nodes []treeNode, indent int, continued []int) []treeNode {
	var children, rest []treeNode
	for _, n := range nodes {
		if n.parent == parent {
			children = append(children, n)
		} else {
			rest = append(rest, n)
		}
	}
	for i, child := range children {
		prefix := []rune(strings.Repeat(" ", indent))
		for _, col := range continued {
			prefix[col] = treeVertical
		}
		header, noteHeader := treeLast, " "
		sub := continued
		if i < len(children)-1 {
			header, noteHeader = treeMore, string(treeVertical)
			sub = append(append([]int(nil), continued...), indent)
		}
		stem := strings.Repeat(treeStem, treeIndentStep-1)
		fmt.Fprintf(w, "%s%s%s%s\n", string(prefix), header, stem, child.id)
		for _, note := range child.notes {
			fmt.Fprintf(w, "%s%s%s%s\n", string(prefix), noteHeader, strings.Repeat(" ", treeIndentStep-1), note)
		}
		rest = printSubtree(w, child.id, rest, indent+treeIndentStep, sub)
	}
	return rest
}

package crashtest

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// checkRedeliveries accepts a second delivery to the remote hop only as the
// consequence of a crash (RFC 1047): the earlier one must have been made by
// a process that was then killed, and one kill can repeat at most perKill
// deliveries. It returns how many repeats there were in all, a note per
// kill, and what is wrong.
func checkRedeliveries(d map[string][]int64, perKill int) (total int, notes, problems []string) {
	byKill := map[int64]int{} // epoch of the killed process → repeats it caused
	var same []string
	for tok, epochs := range d {
		if len(epochs) < 2 {
			continue
		}
		sorted := append([]int64(nil), epochs...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] {
				same = append(same, fmt.Sprintf("%s (process %d)", tok, sorted[i]))
				continue
			}
			byKill[sorted[i-1]]++
			total++
		}
	}
	if len(same) > 0 {
		problems = append(problems, "delivered twice by the same relay process, with no crash in between: "+first(same, 20))
	}
	for epoch, n := range byKill {
		notes = append(notes, fmt.Sprintf("kill %d: %d deliveries made before it were repeated after the restart", epoch+1, n))
		if n > perKill {
			problems = append(problems, fmt.Sprintf("kill %d caused %d repeated deliveries, more than the %d attempts that can be in flight", epoch+1, n, perKill))
		}
	}
	sort.Strings(notes)
	return total, notes, problems
}

// checkDeliveries holds what arrived (token → count) against what the
// senders saw. maxDup is how many extra deliveries in all are tolerated,
// minAcked how many acknowledgements the load must have produced.
func checkDeliveries(tokens map[string]tokenState, got map[string]int, maxDup, minAcked int) (summary string, problems []string) {
	var lost, aborted, unknown, dups []string
	var nAcked, nDoubt, nDoubtArrived, extra int
	for tok, st := range tokens {
		n := got[tok]
		switch st {
		case acked:
			nAcked++
			if n == 0 {
				lost = append(lost, tok)
			}
		case dotSent:
			nDoubt++
			if n > 0 {
				nDoubtArrived++
			}
		case rcptSent, refused:
			if n > 0 {
				aborted = append(aborted, fmt.Sprintf("%s (%d×)", tok, n))
			}
		}
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s (%d×)", tok, n))
			extra += n - 1
		}
	}
	for tok, n := range got {
		if _, ok := tokens[tok]; !ok {
			unknown = append(unknown, fmt.Sprintf("%s (%d×)", tok, n))
		}
	}
	summary = fmt.Sprintf("%d messages acknowledged, %d in doubt at a kill (%d of them delivered), %d duplicate deliveries",
		nAcked, nDoubt, nDoubtArrived, extra)
	if nAcked < minAcked {
		problems = append(problems, fmt.Sprintf("only %d messages acknowledged, want %d; the load did not run as planned", nAcked, minAcked))
	}
	if len(lost) > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged messages never arrived (RFC 5321 §6.1): %s", len(lost), first(lost, 20)))
	}
	if len(aborted) > 0 {
		problems = append(problems, "messages whose DATA never completed (or was refused) were delivered: "+first(aborted, 20))
	}
	if len(unknown) > 0 {
		problems = append(problems, "deliveries to addresses no sender used (a DSN?): "+first(unknown, 20))
	}
	if extra > maxDup {
		problems = append(problems, fmt.Sprintf("%d duplicate deliveries, want at most %d: %s", extra, maxDup, first(dups, 20)))
	}
	return summary, problems
}

func first(ss []string, n int) string {
	sort.Strings(ss)
	if len(ss) > n {
		return strings.Join(ss[:n], ", ") + fmt.Sprintf(", ... (%d in all)", len(ss))
	}
	return strings.Join(ss, ", ")
}

// TestCheckers shows the checks above fail when they should: a crash test
// whose verdict cannot be "fail" proves nothing.
func TestCheckers(t *testing.T) {
	t.Parallel()
	tokens := map[string]tokenState{
		"1p00@x": acked, "2p00@x": acked, "3p00@x": dotSent, "4p00@x": rcptSent, "1p01@x": refused,
	}
	tests := []struct {
		name   string
		got    map[string]int
		maxDup int
		want   string // substring of the one problem; "" for none
	}{
		{"all once", map[string]int{"1p00@x": 1, "2p00@x": 1}, 0, ""},
		{"in doubt arrived", map[string]int{"1p00@x": 1, "2p00@x": 1, "3p00@x": 1}, 0, ""},
		{"lost", map[string]int{"1p00@x": 1}, 0, "never arrived"},
		{"twice at a Maildir", map[string]int{"1p00@x": 2, "2p00@x": 1}, 0, "1 duplicate deliveries, want at most 0"},
		{"twice within bound", map[string]int{"1p00@x": 2, "2p00@x": 1}, 1, ""},
		{"in doubt twice", map[string]int{"1p00@x": 1, "2p00@x": 1, "3p00@x": 2}, 0, "duplicate"},
		{"incomplete DATA delivered", map[string]int{"1p00@x": 1, "2p00@x": 1, "4p00@x": 1}, 0, "never completed"},
		{"refused delivered", map[string]int{"1p00@x": 1, "2p00@x": 1, "1p01@x": 1}, 0, "never completed"},
		{"unknown", map[string]int{"1p00@x": 1, "2p00@x": 1, "crash-sender@x": 1}, 0, "no sender used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := checkDeliveries(tokens, tt.got, tt.maxDup, 2)
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Errorf("checkDeliveries = %q, want no problem", problems)
			case tt.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.want)):
				t.Errorf("checkDeliveries = %q, want one problem containing %q", problems, tt.want)
			}
		})
	}
	t.Run("too few acknowledged", func(t *testing.T) {
		if _, problems := checkDeliveries(tokens, map[string]int{"1p00@x": 1, "2p00@x": 1}, 0, 3); len(problems) != 1 {
			t.Errorf("checkDeliveries with 2 of 3 acknowledgements = %q, want one problem", problems)
		}
	})

	redeliveries := []struct {
		name    string
		d       map[string][]int64
		total   int
		problem string
	}{
		{"none", map[string][]int64{"a": {0}, "b": {1}}, 0, ""},
		{"across a kill", map[string][]int64{"a": {0, 1}, "b": {1, 2}, "c": {0, 1, 2}}, 4, ""},
		{"same process", map[string][]int64{"a": {1, 1}}, 0, "same relay process"},
		{"too many for one kill", map[string][]int64{"a": {0, 1}, "b": {0, 1}, "c": {0, 2}}, 3, "kill 1 caused 3"},
	}
	for _, tt := range redeliveries {
		t.Run("redeliveries/"+tt.name, func(t *testing.T) {
			total, _, problems := checkRedeliveries(tt.d, 2)
			if total != tt.total {
				t.Errorf("checkRedeliveries total = %d, want %d", total, tt.total)
			}
			switch {
			case tt.problem == "" && len(problems) > 0:
				t.Errorf("checkRedeliveries = %q, want no problem", problems)
			case tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.problem)):
				t.Errorf("checkRedeliveries = %q, want one problem containing %q", problems, tt.problem)
			}
		})
	}
}

package handlers

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
)

// TestRobotResultNamesEachOutcome: every way a run can end maps to the
// outcome a later condition tests and to a log line that says what to do;
// a lead gone and a refusal are told apart from a failure worth running
// again (the simulator cannot delete a lead between a stage change and
// the run, so this mapping is tested here).
func TestRobotResultNamesEachOutcome(t *testing.T) {
	bundle, err := lang.Load()
	require.NoError(t, err)
	loc := bundle.For("en")
	for name, c := range map[string]struct {
		r       removal
		err     error
		outcome string
		count   string
		log     string
	}{
		"removed":   {removal{removed: make([]leadItem, 4)}, nil, "removed", "4", "Contacts unlinked from the lead: 4."},
		"uncounted": {removal{uncounted: true}, nil, "removed", "", "how many is unknown"},
		"nothing":   {removal{}, nil, "nothing", "0", "nothing to unlink"},
		"denied":    {removal{}, &bitrix24.Error{Code: "ACCESS_DENIED"}, "denied", "0", "“Run as”"},
		"lead gone": {removal{}, &bitrix24.Error{Code: "NOT_FOUND"}, "lead_gone", "0", "no longer exists"},
		"busy":      {removal{}, &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED"}, "failed", "0", "QUERY_LIMIT_EXCEEDED"},
		"no answer": {removal{}, errors.Join(bitrix24.ErrUnreachable, errors.New("timeout")), "failed", "0", "run the rule on this lead again"},
	} {
		out := robotResult(loc, c.r, c.err)
		assert.Equal(t, c.outcome, out.Outcome, name)
		assert.Equal(t, c.count, out.Count, name)
		assert.Contains(t, out.Log, c.log, name)
	}
}

package reqid

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValid(t *testing.T) {
	for _, ok := range []string{"a", "0af7651916cd43dd8448eb211c80319c", "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "req_1.2:3", strings.Repeat("x", MaxLen)} {
		assert.True(t, Valid(ok), ok)
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxLen+1), "a b", "a\nb", "a\"b", "é", "a,b", "a;b", "<script>"} {
		assert.False(t, Valid(bad), bad)
	}
	a, b := New(), New()
	assert.True(t, Valid(a))
	assert.Len(t, a, 32)
	assert.NotEqual(t, a, b)
}

// TestHandlerStampsTheID: a line logged with the request's context carries
// its id, one logged without carries none, and attributes and groups
// added on the way keep the wrapper.
func TestHandlerStampsTheID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	ctx := With(context.Background(), "abc-123")
	log.InfoContext(ctx, "with")
	log.Info("without")
	log.WithGroup("g").InfoContext(ctx, "grouped", "k", 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	var first, second map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &second))
	assert.Equal(t, "abc-123", first[Attr])
	assert.Equal(t, "x", first["component"])
	assert.NotContains(t, second, Attr)
	assert.Contains(t, lines[2], `"request_id":"abc-123"`)
	assert.Equal(t, "", From(context.Background()))
}

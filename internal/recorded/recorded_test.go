package recorded

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFieldsKeepTheRecordedOrder(t *testing.T) {
	f, err := Load("frame_lead_tab")
	require.NoError(t, err)
	assert.Equal(t, []string{"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}, f.Query.Keys())
	assert.Equal(t, "AUTH_ID", f.Form.Keys()[0])
	v, ok := f.Form.Get("PLACEMENT")
	assert.True(t, ok)
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", v)
	_, ok = f.Form.Get("NOPE")
	assert.False(t, ok)
}

func TestShapeIgnoresValuesOnly(t *testing.T) {
	a, err := Shape([]byte(`{"b":1,"a":"x","c":[{"d":true}],"e":null,"f":[]}`))
	require.NoError(t, err)
	b, err := Shape([]byte(`{"a":"y","b":2.5,"c":[{"d":false}],"e":null,"f":[]}`))
	require.NoError(t, err)
	assert.Equal(t, a, b)
	for _, other := range []string{
		`{"a":"y","b":"2","c":[{"d":false}],"e":null,"f":[]}`, // a number became a string
		`{"a":"y","b":2,"c":[{"d":false}],"e":null}`,          // a key is missing
		`{"a":"y","b":2,"c":{},"e":null,"f":[]}`,              // a list became an object
	} {
		c, err := Shape([]byte(other))
		require.NoError(t, err)
		assert.NotEqual(t, a, c, other)
	}
}

func TestLoadStaysInTheFolder(t *testing.T) {
	_, err := Load("../../go")
	assert.Error(t, err)
	_, err = Load("no_such_recording")
	assert.Error(t, err)
}

package bitrix24

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/recorded"
	"github.com/b24apps/leadcontacts/secret"
)

// TestRecordedRESTErrors feeds the recorded error answers to the client:
// each is matched by its code, whatever its HTTP status, and the ones
// the app must treat alike are classified alike.
func TestRecordedRESTErrors(t *testing.T) {
	tests := []struct {
		name string
		want error
		auth bool // IsAuthFailure
	}{
		{"rest_no_auth", ErrNoAuthFound, true},
		{"rest_invalid_token", ErrInvalidToken, true},
		{"rest_expired_token", ErrExpiredToken, true},
		{"rest_query_limit_exceeded", ErrQueryLimitExceeded, false},
		{"rest_overload_limit", ErrOverloadLimit, false},
		{"rest_operation_time_limit", ErrOperationTimeLimit, false},
		{"rest_handler_already_binded", &Error{Code: "ERROR_CORE"}, false},
		{"rest_wrong_handler_url", &Error{Code: "ERROR_WRONG_HANDLER_URL"}, false},
		{"rest_placement_bind_not_admin", ErrAccessDenied, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := recorded.Load(tt.name)
			require.NoError(t, err)
			srv, _, _ := fakePortal(t, f.Status, string(f.Body))
			err = newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("tok"), "profile", nil, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.auth, IsAuthFailure(err))
			var be *Error
			require.True(t, errors.As(err, &be))
			assert.Equal(t, f.Status, be.HTTPStatus)
			assert.NotEmpty(t, be.Description)
		})
	}
}

// TestRecordedBatchAnswer decodes the recorded batch answer: empty parts
// come as [], and the failing command's error is reported under its key.
func TestRecordedBatchAnswer(t *testing.T) {
	f, err := recorded.Load("batch_answer")
	require.NoError(t, err)
	srv, _, _ := fakePortal(t, f.Status, string(f.Body))
	const key = "f26b4ebc-3a82-4fe6-8d26-595d6eaf029b"
	res, err := newTestClient().Batch(context.Background(), srv.URL+"/rest/", secret.New("tok"), false,
		[]Cmd{{Key: key, Method: "crm.lead.list"}})
	require.NoError(t, err)
	assert.ErrorIs(t, res.Err(key), ErrOperationTimeLimit)
	var out []any
	assert.ErrorIs(t, res.Decode(key, &out), ErrOperationTimeLimit)
}

// TestRecordedProfileAndAppInfo decodes the recorded answers into the
// types the handlers use for them.
func TestRecordedProfileAndAppInfo(t *testing.T) {
	// answer has the fields of both answers; each decodes only its own.
	type answer struct {
		ID    ID     `json:"ID"`
		Admin Bool   `json:"ADMIN"`
		Code  string `json:"CODE"`
	}
	for _, tt := range []struct {
		name, method string
		wantID       int64
		idShape      string
		check        func(t *testing.T, got answer)
	}{
		{"profile", "profile", 1, "ID is a string in the answer", func(t *testing.T, got answer) {
			assert.True(t, bool(got.Admin))
		}},
		{"app_info", "app.info", 5, "ID is a number in the answer", func(t *testing.T, got answer) {
			assert.Equal(t, "telefum24.kp10", got.Code)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := recorded.Load(tt.name)
			require.NoError(t, err)
			srv, _, _ := fakePortal(t, f.Status, string(f.Body))
			var got answer
			require.NoError(t, newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("tok"), tt.method, nil, &got))
			assert.EqualValues(t, tt.wantID, got.ID, tt.idShape)
			tt.check(t, got)
		})
	}
}

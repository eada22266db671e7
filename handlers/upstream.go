package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
)

// upstreamError is what a failure of Bitrix24 (or of the way to it) means
// to the user: the catalogue key that explains it, the status of the page
// that says so, and whether offering the button again makes sense.
type upstreamError struct {
	key    string
	status int
	retry  bool
}

// upstreamErrors is the one table from a failure to its explanation; the
// first row that matches wins, and anything else is "unknown".
var upstreamErrors = []struct {
	match func(error) bool
	upstreamError
}{
	{oauth.CredentialsRejected, upstreamError{"error.app_credentials", http.StatusServiceUnavailable, false}},
	{func(err error) bool { return errors.Is(err, errSessionDead) || bitrix24.IsAuthFailure(err) },
		upstreamError{"error.session_expired", http.StatusUnauthorized, false}},
	{is(bitrix24.ErrAccessDenied, bitrix24.ErrInvalidCredentials, bitrix24.ErrUserAccess),
		upstreamError{"error.ACCESS_DENIED", http.StatusForbidden, false}},
	{is(bitrix24.ErrNotFound), upstreamError{"error.NOT_FOUND", http.StatusNotFound, false}},
	{is(bitrix24.ErrQueryLimitExceeded, bitrix24.ErrRateLimited),
		upstreamError{"error.QUERY_LIMIT_EXCEEDED", http.StatusServiceUnavailable, true}},
	{is(bitrix24.ErrOperationTimeLimit), upstreamError{"error.OPERATION_TIME_LIMIT", http.StatusTooManyRequests, true}},
	{is(bitrix24.ErrOverloadLimit), upstreamError{"error.OVERLOAD_LIMIT", http.StatusServiceUnavailable, false}},
	{is(bitrix24.ErrPaymentRequired, oauth.ErrPaymentRequired), upstreamError{"error.PAYMENT_REQUIRED", http.StatusForbidden, false}},
	{is(bitrix24.ErrInsufficientScope), upstreamError{"error.insufficient_scope", http.StatusForbidden, false}},
	{is(bitrix24.ErrMoved), upstreamError{"error.moved", http.StatusBadGateway, false}},
	{is(bitrix24.ErrUnreachable, bitrix24.ErrBadResponse, context.DeadlineExceeded),
		upstreamError{"error.unreachable", http.StatusBadGateway, true}},
	// A deleted portal is not coming back: no retry.
	{is(bitrix24.ErrPortalDeleted), upstreamError{"error.unknown", http.StatusBadGateway, false}},
}

var unknownUpstream = upstreamError{"error.unknown", http.StatusBadGateway, true}

// is matches any of the targets with errors.Is.
func is(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// explain looks a failure up in upstreamErrors.
func explain(err error) upstreamError {
	for _, row := range upstreamErrors {
		if row.match(err) {
			return row.upstreamError
		}
	}
	return unknownUpstream
}

// upstreamKey is the catalogue key that explains a failure.
func upstreamKey(err error) string { return explain(err).key }

// upstreamStatus is the HTTP status of the answer page for a failure.
func upstreamStatus(err error) int { return explain(err).status }

// retryable reports whether offering the button again makes sense.
func retryable(err error) bool { return explain(err).retry }

// upstreamCode is the Bitrix24 error code shown next to the explanation.
func upstreamCode(err error) string {
	var be *bitrix24.Error
	if errors.As(err, &be) {
		if c := be.EffectiveCode(); c != "" {
			return c
		}
		return "(" + be.Description + ")"
	}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

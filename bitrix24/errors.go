package bitrix24

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an error reported by Bitrix24 itself: the "error" and
// "error_description" of a response envelope, or of one batch sub-call.
// Match it with errors.Is against the sentinels below, never by HTTP status:
// 503 means either QUERY_LIMIT_EXCEEDED or OVERLOAD_LIMIT, and method-level
// errors such as NOT_FOUND come back as 400.
type Error struct {
	Code        string // as sent; "" for crm.lead.get-style errors
	Description string // error_description; meant for logs, not for end users
	HTTPStatus  int    // 0 for a batch sub-call (the batch itself answers 200)
	Method      string // the REST method that failed
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = "(no code)"
	}
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("bitrix24: %s: %s (HTTP %d): %s", e.Method, code, e.HTTPStatus, e.Description)
	}
	return fmt.Sprintf("bitrix24: %s: %s: %s", e.Method, code, e.Description)
}

// Is matches sentinels by code, case-insensitively (Bitrix24 mixes
// "expired_token" and "QUERY_LIMIT_EXCEEDED" styles). Errors with an empty
// code — crm.lead.get and crm.contact.get answer {"error":"",
// "error_description":"Not found"} — match by their documented descriptions.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t.Code == "" {
		return false
	}
	return strings.EqualFold(e.effectiveCode(), t.Code)
}

// effectiveCode maps the documented empty-code descriptions to the codes
// the same condition has on other methods.
func (e *Error) effectiveCode() string {
	if e.Code != "" {
		return e.Code
	}
	d := strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(e.Description), ".")))
	switch {
	case d == "not found":
		return "NOT_FOUND"
	case d == "access denied":
		return "ACCESS_DENIED"
	case strings.Contains(d, "not defined or invalid"), strings.Contains(d, "required"):
		return "INVALID_ARGUMENT"
	}
	return ""
}

// EffectiveCode returns the code callers should branch on: Code when set,
// else the code implied by a documented empty-code description, else "".
func (e *Error) EffectiveCode() string { return e.effectiveCode() }

// Sentinels for the codes the app branches on. Compare with errors.Is.
var (
	ErrExpiredToken       = &Error{Code: "expired_token"}
	ErrInvalidToken       = &Error{Code: "invalid_token"}
	ErrNoAuthFound        = &Error{Code: "NO_AUTH_FOUND"}
	ErrAccessDenied       = &Error{Code: "ACCESS_DENIED"}
	ErrNotFound           = &Error{Code: "NOT_FOUND"}
	ErrInvalidArgument    = &Error{Code: "INVALID_ARGUMENT"}
	ErrInsufficientScope  = &Error{Code: "insufficient_scope"}
	ErrInvalidCredentials = &Error{Code: "INVALID_CREDENTIALS"}
	ErrUserAccess         = &Error{Code: "user_access_error"}
	ErrQueryLimitExceeded = &Error{Code: "QUERY_LIMIT_EXCEEDED"}
	ErrOperationTimeLimit = &Error{Code: "OPERATION_TIME_LIMIT"}
	ErrOverloadLimit      = &Error{Code: "OVERLOAD_LIMIT"}
	ErrPortalDeleted      = &Error{Code: "PORTAL_DELETED"}
	ErrPaymentRequired    = &Error{Code: "PAYMENT_REQUIRED"}
	ErrMethodNotFound     = &Error{Code: "ERROR_METHOD_NOT_FOUND"}
	ErrMethodConfirmWait  = &Error{Code: "METHOD_CONFIRM_WAITING"}
	ErrWrongAuthType      = &Error{Code: "WRONG_AUTH_TYPE"}
	// ErrHandlerAlreadyBound is the docs' example code; the server answers
	// a repeated placement.bind / event.bind with ERROR_CORE "… Handler
	// already binded" (recorded), which callers match by description.
	ErrHandlerAlreadyBound = &Error{Code: "ERROR_HANDLER_ALREADY_EXIST"}
	ErrInternal            = &Error{Code: "INTERNAL_SERVER_ERROR"}
)

// Failures that are not Bitrix24 error envelopes.
var (
	// ErrUnreachable: no answer (connection refused, DNS, TLS, timeout).
	// Whether the call ran upstream is unknown.
	ErrUnreachable = errors.New("bitrix24: portal unreachable")
	// ErrBadResponse: an answer that is not a Bitrix24 envelope (an HTML
	// error page from an overloaded portal, truncated JSON, an oversized
	// body). Whether the call ran upstream is unknown.
	ErrBadResponse = errors.New("bitrix24: unexpected response")
	// ErrMoved: the portal answered with a redirect, as it does after a
	// domain change. The client never follows it blindly; see MovedError.
	ErrMoved = errors.New("bitrix24: portal moved")
)

// MovedError carries the redirect target of ErrMoved.
type MovedError struct {
	Method     string
	HTTPStatus int
	Location   string
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("bitrix24: %s: portal answered HTTP %d redirect", e.Method, e.HTTPStatus)
}

// Unwrap lets errors.Is(err, ErrMoved) match.
func (e *MovedError) Unwrap() error { return ErrMoved }

// IsAuthFailure reports whether err means the token is not (or no longer)
// valid for the portal: expired, revoked, or from elsewhere.
func IsAuthFailure(err error) bool {
	return errors.Is(err, ErrExpiredToken) || errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrNoAuthFound)
}

// Refreshable reports whether a refresh of the token may cure err. Bitrix24
// documents expired_token; its JS SDK also refreshes on invalid_token.
func Refreshable(err error) bool {
	return errors.Is(err, ErrExpiredToken) || errors.Is(err, ErrInvalidToken)
}

// Ambiguous reports whether the call may or may not have run upstream.
func Ambiguous(err error) bool {
	var be *Error
	if errors.As(err, &be) {
		return be.HTTPStatus >= 500 && !errors.Is(err, ErrQueryLimitExceeded) && !errors.Is(err, ErrOverloadLimit) && !errors.Is(err, ErrPortalDeleted)
	}
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrBadResponse)
}

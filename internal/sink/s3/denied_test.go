package s3

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/internal/stream"
)

func responseError(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err,
	}}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		denied bool
	}{
		{"Nil", nil, false},
		{"AccessDenied", &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}, true},
		{"InvalidAccessKeyId", &smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, true},
		{"SignatureDoesNotMatch", &smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, true},
		{"InvalidToken", &smithy.GenericAPIError{Code: "InvalidToken"}, true},
		{"ExpiredToken", &smithy.GenericAPIError{Code: "ExpiredToken"}, true},
		{"AllAccessDisabled", &smithy.GenericAPIError{Code: "AllAccessDisabled"}, true},
		{"HTTP403", responseError(http.StatusForbidden, errors.New("forbidden")), true},
		{"HTTP401", responseError(http.StatusUnauthorized, errors.New("unauthorized")), true},
		{"NoSuchBucket", &smithy.GenericAPIError{Code: "NoSuchBucket"}, false},
		{"HTTP500", responseError(http.StatusInternalServerError, &smithy.GenericAPIError{Code: "InternalError"}), false},
		{"Wrapped", fmt.Errorf("op: %w", &smithy.GenericAPIError{Code: "AccessDenied"}), true},
		{"SourceError", &stream.SourceError{Err: &smithy.GenericAPIError{Code: "AccessDenied"}}, false},
		{"Plain", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			if errors.Is(got, sink.ErrAccessDenied) != tc.denied {
				t.Fatalf("errors.Is(classify(%v), sink.ErrAccessDenied) = %v, want %v", tc.err, !tc.denied, tc.denied)
			}
			if tc.err == nil {
				if got != nil {
					t.Fatalf("classify(nil) = %v", got)
				}
				return
			}
			if got.Error() != tc.err.Error() {
				t.Errorf("message %q, want the original %q", got.Error(), tc.err.Error())
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("the original error is not in the chain of %v", got)
			}
			var ae smithy.APIError
			if errors.As(tc.err, &ae) && !errors.As(got, &ae) {
				t.Errorf("the smithy.APIError is no longer in the chain")
			}
		})
	}
}

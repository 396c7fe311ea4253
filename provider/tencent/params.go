package tencent

import "github.com/p11kms/p11kms/provider/wire"

// Tencent's parameters decode with the pipeline's strict decoders: a TC3
// POST body as JSON, a GET query or v1 form as flattened names.
var decodeJSON, decodeFlat = wire.DecodeJSON, wire.DecodeFlat

// decodeCodes are Tencent's codes for the decoders' refusals.
var decodeCodes = map[wire.DecodeKind]string{wire.Malformed: CodeInvalidParameter, wire.UnknownParameter: CodeUnknownParameter,
	wire.TooLong: CodeInvalidParameterVal, wire.MissingParameter: CodeMissingParameter, wire.Unsupported: CodeInternalError}

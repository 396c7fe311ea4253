package xks

// CDIV is cdiv, for the spec-vector test.
var CDIV = cdiv

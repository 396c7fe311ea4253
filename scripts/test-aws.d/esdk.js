// The AWS Encryption SDK for JavaScript (@aws-crypto/client-node), its KMS
// keyring's client pointed at p11kms: encrypts or decrypts a file with a
// KMS key that lives in the token. Credentials and region come from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
//
//   node esdk.js encrypt|decrypt <endpoint> <key ARN> <in> <out>
'use strict';
const fs = require('fs');
const { KmsKeyringNode, buildClient, CommitmentPolicy, getClient } = require('@aws-crypto/client-node');
const { KMS } = require('@aws-sdk/client-kms');

const [mode, endpoint, keyArn, inFile, outFile] = process.argv.slice(2);
const context = { purpose: 'p11kms scripts/test-aws', tenant: 'a b&c=d/é' };

async function main() {
  const clientProvider = getClient(KMS, { endpoint });
  const keyring = new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider });
  const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const input = fs.readFileSync(inFile);
  if (mode === 'encrypt') {
    const { result } = await encrypt(keyring, input, { encryptionContext: context });
    fs.writeFileSync(outFile, result);
  } else if (mode === 'decrypt') {
    const { plaintext, messageHeader } = await decrypt(keyring, input);
    for (const [k, v] of Object.entries(context)) {
      if (messageHeader.encryptionContext[k] !== v) throw new Error(`encryption context ${k}: ${messageHeader.encryptionContext[k]}`);
    }
    fs.writeFileSync(outFile, plaintext);
  } else {
    throw new Error('mode: accepted encrypt or decrypt');
  }
}

main().catch((e) => { console.error(`esdk ${mode}: ${e.name}: ${e.message}`); process.exit(1); });

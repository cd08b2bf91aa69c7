'use strict';
// Shared by grpc_server.js and grpc_client.js: loads proto/test.proto.

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, 'proto', 'test.proto');
const MAX_MSG = 16 * 1024 * 1024;

function loadTestService() {
  const def = protoLoader.loadSync(PROTO, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).wisp.test;
}

const channelOptions = {
  'grpc.max_receive_message_length': MAX_MSG,
  'grpc.max_send_message_length': MAX_MSG,
};

module.exports = { grpc, loadTestService, channelOptions, MAX_MSG, PROTO };

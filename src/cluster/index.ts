export * from './codec.js';
export * from './transport.js';
export * from './nats-server.js';
export * from './host.js';
export * from './cluster.js';
export * from './run.js';
export * from './synthetic.js';

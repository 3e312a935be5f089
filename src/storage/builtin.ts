/**
 * Registers the drivers that ship with fluctuat. The server wiring and the CLI import this
 * module; the broker core never does (it only knows drivers by name, through the registry).
 */
import { fileDriver } from './filelog/driver.js';
import { memoryDriver } from './memory.js';
import { registerDriver } from './registry.js';

registerDriver(memoryDriver);
registerDriver(fileDriver);

import type { StorageDriver } from './engine.js';

/** Storage drivers register themselves here by name; configuration picks one. */
const drivers = new Map<string, StorageDriver>();

export function registerDriver(driver: StorageDriver): void {
  if (drivers.has(driver.name)) throw new Error(`storage driver "${driver.name}" is already registered`);
  drivers.set(driver.name, driver);
}

export function getDriver(name: string): StorageDriver {
  const driver = drivers.get(name);
  if (!driver) {
    throw new Error(`unknown storage driver "${name}" (registered: ${[...drivers.keys()].join(', ') || 'none'})`);
  }
  return driver;
}

export function driverNames(): string[] {
  return [...drivers.keys()];
}

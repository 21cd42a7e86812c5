// JSON <-> protobuf objects for the HTTP gateway, as etcd's grpc-gateway (v1, jsonpb with OrigName)
// reads and writes them: field names as in the .proto (the lowerCamel JSON name is accepted too),
// bytes as base64, 64-bit integers as decimal strings, enums by name, default values omitted.
import type * as protoLoader from '@grpc/proto-loader';
import { assert, invalidArgument } from '../util/index.ts';

/** The parts of a protobuf FieldDescriptorProto the conversion needs (as @grpc/proto-loader exposes it). */
interface FieldDescriptor {
  name: string;
  label: string;
  type: string;
  typeName: string;
}

interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  enumType: EnumDescriptor[];
}

interface EnumDescriptor {
  name: string;
  value: { name: string; number: number }[];
}

interface Field {
  name: string;
  jsonName: string;
  repeated: boolean;
  type: string;
  /** Full name of the message or enum type, for TYPE_MESSAGE / TYPE_ENUM. */
  typeName: string;
}

interface MessageType {
  fields: Field[];
  byName: Map<string, Field>;
}

interface EnumType {
  names: Set<string>;
  zeroName: string;
}

const INT64_TYPES = new Set(['TYPE_INT64', 'TYPE_UINT64', 'TYPE_SINT64', 'TYPE_FIXED64', 'TYPE_SFIXED64']);
const INT32_TYPES = new Set(['TYPE_INT32', 'TYPE_UINT32', 'TYPE_SINT32', 'TYPE_FIXED32', 'TYPE_SFIXED32']);
const INTEGER_STRING = /^-?[0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_URL = /^[A-Za-z0-9_-]*={0,2}$/;
/** Nesting deeper than this is refused: etcd's deepest message (a txn of txns) stays far below it. */
const MAX_DEPTH = 64;

/** protoc's ToJsonName: drop each underscore and upper-case the letter after it. */
export function jsonName(protoName: string): string {
  return protoName.replace(/_(.)/g, (_match, letter: string) => letter.toUpperCase());
}

/** The message and enum types of a package definition, with etcd's field names as written in the .proto. */
export class JsonCodec {
  private readonly messages = new Map<string, MessageType>();
  private readonly enums = new Map<string, EnumType>();

  constructor(definition: protoLoader.PackageDefinition) {
    for (const [fullName, entry] of Object.entries(definition)) {
      if (!('format' in entry) || entry.format !== 'Protocol Buffer 3 DescriptorProto') continue;
      this.addMessage(fullName, entry.type as MessageDescriptor);
    }
    for (const [fullName, entry] of Object.entries(definition)) {
      if ('format' in entry && entry.format === 'Protocol Buffer 3 EnumDescriptorProto') {
        this.addEnum(fullName, entry.type as EnumDescriptor);
      }
    }
    this.resolveTypeNames();
  }

  /** A request from JSON: known fields renamed to their .proto names and checked; unknown ones ignored, as etcd does. */
  fromJson(typeName: string, json: unknown, depth = 0): Record<string, unknown> {
    if (depth > MAX_DEPTH) throw invalidArgument('json: message nested too deeply');
    if (json === null || json === undefined) return {};
    if (typeof json !== 'object' || Array.isArray(json))
      throw invalidArgument(`json: cannot unmarshal ${kindOf(json)} into ${typeName}`);
    const type = this.message(typeName);
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(json)) {
      const field = type.byName.get(key);
      if (field === undefined || value === null) continue;
      if (!field.repeated) {
        out[field.name] = this.valueFromJson(field, value, depth);
        continue;
      }
      if (!Array.isArray(value)) throw invalidArgument(`json: field ${key} of ${typeName} must be an array`);
      out[field.name] = value.map((item) => this.valueFromJson(field, item, depth));
    }
    return out;
  }

  /** A decoded response as JSON: fields in .proto order, default values left out (jsonpb without EmitDefaults). */
  toJson(typeName: string, message: Record<string, unknown>): Record<string, unknown> {
    const type = this.message(typeName);
    const out: Record<string, unknown> = {};
    for (const field of type.fields) {
      const value = message[field.name];
      if (value === null || value === undefined) continue;
      if (field.repeated) {
        assert(Array.isArray(value), 'a repeated field decodes to an array');
        if (value.length === 0) continue;
        out[field.name] = value.map((item: unknown) => this.valueToJson(field, item));
        continue;
      }
      if (field.type !== 'TYPE_MESSAGE' && this.isDefault(field, value)) continue;
      out[field.name] = this.valueToJson(field, value);
    }
    return out;
  }

  private valueFromJson(field: Field, value: unknown, depth: number): unknown {
    const bad = () =>
      invalidArgument(
        `json: invalid value for ${field.type.slice(5).toLowerCase()} field ${field.name}: ${JSON.stringify(value)}`,
      );
    switch (field.type) {
      case 'TYPE_MESSAGE':
        return this.fromJson(field.typeName, value, depth + 1);
      case 'TYPE_BYTES':
        if (typeof value !== 'string') throw bad();
        if (BASE64.test(value)) return Buffer.from(value, 'base64');
        if (BASE64_URL.test(value)) return Buffer.from(value, 'base64url');
        throw invalidArgument(`json: illegal base64 data in field ${field.name}`);
      case 'TYPE_STRING':
        if (typeof value !== 'string') throw bad();
        return value;
      case 'TYPE_BOOL':
        if (typeof value !== 'boolean') throw bad();
        return value;
      case 'TYPE_ENUM': {
        const known = this.enums.get(field.typeName);
        assert(known !== undefined, () => `enum ${field.typeName} is loaded`);
        if (typeof value === 'string' && known.names.has(value)) return value;
        if (typeof value === 'number' && Number.isInteger(value)) return value;
        throw bad();
      }
      default:
        if (INT64_TYPES.has(field.type) || INT32_TYPES.has(field.type)) {
          // jsonpb takes integers as JSON numbers or as decimal strings.
          if (typeof value === 'string' && INTEGER_STRING.test(value)) return value;
          if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
          throw bad();
        }
        throw bad();
    }
  }

  private valueToJson(field: Field, value: unknown): unknown {
    if (field.type !== 'TYPE_MESSAGE') return value;
    assert(typeof value === 'object' && value !== null, 'a message field decodes to an object');
    return this.toJson(field.typeName, value as Record<string, unknown>);
  }

  private isDefault(field: Field, value: unknown): boolean {
    if (field.type === 'TYPE_ENUM') return value === this.enums.get(field.typeName)?.zeroName || value === 0;
    return value === false || value === '' || value === 0 || value === '0';
  }

  private message(typeName: string): MessageType {
    const type = this.messages.get(typeName);
    assert(type !== undefined, () => `message ${typeName} is loaded`);
    return type;
  }

  private addMessage(fullName: string, descriptor: MessageDescriptor): void {
    if (this.messages.has(fullName)) return;
    const fields = descriptor.field.map((field) => ({
      name: field.name,
      jsonName: jsonName(field.name),
      repeated: field.label === 'LABEL_REPEATED',
      type: field.type,
      typeName: field.typeName,
    }));
    const byName = new Map<string, Field>();
    for (const field of fields) {
      byName.set(field.jsonName, field);
      byName.set(field.name, field); // the .proto name wins where the two collide
    }
    this.messages.set(fullName, { fields, byName });
    for (const nested of descriptor.nestedType) this.addMessage(`${fullName}.${nested.name}`, nested);
    for (const nested of descriptor.enumType) this.addEnum(`${fullName}.${nested.name}`, nested);
  }

  private addEnum(fullName: string, descriptor: EnumDescriptor): void {
    const zero = descriptor.value.find((value) => value.number === 0);
    assert(zero !== undefined, () => `proto3 enum ${fullName} has a zero value`);
    this.enums.set(fullName, {
      names: new Set(descriptor.value.map((value) => value.name)),
      zeroName: zero.name,
    });
  }

  /** Field type names are written relative to their message (protobuf scoping): make them full names. */
  private resolveTypeNames(): void {
    for (const [fullName, type] of this.messages) {
      for (const field of type.fields) {
        if (field.type !== 'TYPE_MESSAGE' && field.type !== 'TYPE_ENUM') continue;
        const known = field.type === 'TYPE_MESSAGE' ? this.messages : this.enums;
        field.typeName = resolveScoped(fullName, field.typeName.replace(/^\./, ''), (name) =>
          known.has(name),
        );
      }
    }
  }
}

function resolveScoped(scope: string, relative: string, exists: (name: string) => boolean): string {
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), relative].join('.');
    if (exists(candidate)) return candidate;
  }
  assert(false, () => `type ${relative} referenced from ${scope} is not loaded`);
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

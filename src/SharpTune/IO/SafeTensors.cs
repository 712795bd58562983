using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SharpTune.IO;

/// <summary>Where one tensor lives in a safetensors file.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file opened memory-mapped. The header is validated up front (size, JSON, dtypes, offsets
/// inside the data section, no overlaps) so corrupt files fail with a message naming the file, never a crash.
/// Format: 8-byte little-endian header length, JSON header, then the raw little-endian tensor bytes.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>Headers beyond this are refused: real ones are kilobytes, a huge one means a corrupt file.</summary>
    public const long MaxHeaderBytes = 100 * 1024 * 1024;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafeTensorInfo> _tensors;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<SafeTensorInfo> Tensors => _tensors.Values;
    public IEnumerable<string> Names => _tensors.Keys;

    private SafeTensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path))
            throw new FileNotFoundException($"safetensors file not found: {path}", path);
        // The opened file's length: FileInfo.Length of a symlink (as in the Hugging Face cache) is the link's own.
        long fileLength;
        using (var stream = File.OpenRead(path))
            fileLength = stream.Length;
        if (fileLength < 8)
            throw new InvalidDataException($"{path}: not a safetensors file (only {fileLength} bytes)");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            var headerLength = _view.ReadInt64(0);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes)
                throw new InvalidDataException($"{path}: invalid safetensors header length {headerLength}");
            if (8 + headerLength > fileLength)
                throw new InvalidDataException($"{path}: truncated safetensors file (header of {headerLength} bytes, file of {fileLength})");
            var headerBytes = new byte[headerLength];
            _view.ReadArray(8, headerBytes, 0, headerBytes.Length);
            _dataStart = 8 + headerLength;
            (_tensors, Metadata) = ParseHeader(path, headerBytes, fileLength - _dataStart);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static SafeTensorsFile Open(string path) => new(path);

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads one tensor into a new CPU tensor of its stored dtype. The bytes are copied in chunks below 2 GiB,
    /// so single tensors of any size load (a large vocabulary's bf16 embedding is over 2 GiB).</summary>
    public unsafe Tensor Load(string name)
    {
        var info = Info(name);
        var dtype = ToScalarType(info.DType, Path, name);
        var tensor = empty(info.Shape, dtype);
        if (info.ByteLength == 0)
            return tensor;
        long elementSize = ElementSize(info.DType);
        var chunkElements = CopyChunkBytes / elementSize;
        byte* basePointer = null;
        _view!.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        try
        {
            var source = basePointer + _view.PointerOffset + _dataStart + info.Begin;
            using var flat = tensor.view(-1);
            for (long start = 0; start < info.ElementCount; start += chunkElements)
            {
                var count = Math.Min(chunkElements, info.ElementCount - start);
                using var slice = flat.narrow(0, start, count);
                new ReadOnlySpan<byte>(source + start * elementSize, checked((int)(count * elementSize))).CopyTo(slice.bytes);
            }
        }
        finally
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        return tensor;
    }

    /// <summary>Bytes copied at a time into a tensor (spans are limited to 2 GiB).</summary>
    private const long CopyChunkBytes = 1L << 30;

    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }

    public static ScalarType ToScalarType(string dtype, string path, string name) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: tensor '{name}' has unsupported dtype '{dtype}'"),
    };

    public static string ToDTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {dtype} cannot be stored in safetensors"),
    };

    private static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        _ => 1,
    };

    private static (Dictionary<string, SafeTensorInfo>, IReadOnlyDictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(Encoding.UTF8.GetString(header).TrimEnd(' ', '\0'));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: safetensors header is not valid JSON ({e.Message})");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: safetensors header is not a JSON object");
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                var name = property.Name;
                if (!seen.Add(name))
                    throw new InvalidDataException($"{path}: the header names tensor '{name}' twice");
                if (name == "__metadata__")
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                var info = ReadEntry(path, name, property.Value, dataLength);
                tensors[name] = info;
            }
            var ordered = tensors.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.Begin).ToList();
            for (var i = 1; i < ordered.Count; i++)
                if (ordered[i].Begin < ordered[i - 1].End)
                    throw new InvalidDataException($"{path}: tensors '{ordered[i - 1].Name}' and '{ordered[i].Name}' overlap");
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement node, Dictionary<string, string> metadata)
    {
        if (node.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: __metadata__ must be an object of strings, found {node.ValueKind}");
        foreach (var entry in node.EnumerateObject())
            metadata[entry.Name] = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()!
                : throw new InvalidDataException($"{path}: __metadata__ value '{entry.Name}' must be a string, found {entry.Value.ValueKind}");
    }

    /// <summary>One tensor's entry, its sizes checked in 64-bit arithmetic that cannot overflow unnoticed.</summary>
    private static SafeTensorInfo ReadEntry(string path, string name, JsonElement entry, long dataLength)
    {
        InvalidDataException Bad(string what) => new($"{path}: tensor '{name}': {what}");
        if (entry.ValueKind != JsonValueKind.Object)
            throw Bad($"header entry must be an object, found {entry.ValueKind}");
        if (!entry.TryGetProperty("dtype", out var dtypeNode) || dtypeNode.ValueKind != JsonValueKind.String)
            throw Bad("header entry lacks a string 'dtype'");
        if (!entry.TryGetProperty("shape", out var shapeNode) || shapeNode.ValueKind != JsonValueKind.Array)
            throw Bad("header entry lacks a 'shape' array");
        if (!entry.TryGetProperty("data_offsets", out var offsetsNode) || offsetsNode.ValueKind != JsonValueKind.Array || offsetsNode.GetArrayLength() != 2)
            throw Bad("header entry lacks 'data_offsets' [begin, end]");
        var dtype = dtypeNode.GetString()!;
        ToScalarType(dtype, path, name);
        long Integer(JsonElement value, string what) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) && number >= 0
                ? number
                : throw Bad($"{what} {value.GetRawText()} is not a non-negative 64-bit integer");
        var shape = shapeNode.EnumerateArray().Select(d => Integer(d, "dimension")).ToArray();
        var begin = Integer(offsetsNode[0], "begin offset");
        var end = Integer(offsetsNode[1], "end offset");
        if (end < begin || end > dataLength)
            throw Bad($"offsets [{begin}, {end}) lie outside the data section of {dataLength} bytes (truncated file?)");
        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw Bad($"shape [{string.Join(", ", shape)}] {dtype} is larger than 2^63 bytes");
        }
        if (bytes != end - begin)
            throw Bad($"shape [{string.Join(", ", shape)}] {dtype} needs {bytes} bytes, header gives {end - begin}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }
}

/// <summary>Writes safetensors files: header sorted by name like the reference implementation, 8-byte aligned.</summary>
public static class SafeTensorsWriter
{
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (key, value) in metadata)
                meta[key] = value;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        // The scope frees the detached/CPU/contiguous copies; the caller's tensors are untouched.
        using var scope = NewDisposeScope();
        var contiguous = new List<Tensor>(entries.Count);
        foreach (var (name, tensor) in entries)
        {
            var cpu = tensor.detach().cpu().contiguous();
            contiguous.Add(cpu);
            var length = cpu.NumberOfElements * cpu.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = SafeTensorsFile.ToDTypeName(cpu.dtype),
                ["shape"] = new JsonArray(cpu.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + length),
            };
            offset += length;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (headerBytes.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            BitConverter.TryWriteBytes(lengthBytes, (long)padded);
            stream.Write(lengthBytes);
            stream.Write(headerBytes);
            for (var i = headerBytes.Length; i < padded; i++)
                stream.WriteByte((byte)' ');
            foreach (var tensor in contiguous)
                if (tensor.NumberOfElements > 0)
                    stream.Write(tensor.bytes);
        });
    }
}

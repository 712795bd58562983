using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SharpTune.IO;

/// <summary>
/// The weights of a Hugging Face model directory: <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Tensors are read lazily by name from memory-mapped files.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsFile> _byTensor = new(StringComparer.Ordinal);
    private readonly List<SafeTensorsFile> _files = [];

    public string Directory { get; }
    public IEnumerable<string> Names => _byTensor.Keys;
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    private Checkpoint(string directory) => Directory = directory;

    /// <summary>Opens the weights of a model directory (or a single .safetensors file).</summary>
    public static Checkpoint Open(string path)
    {
        if (File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var single = new Checkpoint(Path.GetDirectoryName(Path.GetFullPath(path))!);
            single.Add(SafeTensorsFile.Open(path));
            return single;
        }
        if (!System.IO.Directory.Exists(path))
            throw new DirectoryNotFoundException($"model directory not found: {path}");
        var checkpoint = new Checkpoint(path);
        try
        {
            var index = Path.Combine(path, IndexFile);
            var file = Path.Combine(path, SingleFile);
            if (File.Exists(index))
                checkpoint.AddShards(index);
            else if (File.Exists(file))
                checkpoint.Add(SafeTensorsFile.Open(file));
            else
                throw RefuseOrMissing(path);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
        return checkpoint;
    }

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    public SafeTensorInfo Info(string name) => _byTensor.TryGetValue(name, out var file)
        ? file.Info(name)
        : throw new KeyNotFoundException($"{Directory}: checkpoint has no tensor '{name}'");

    public Tensor Load(string name) => _byTensor.TryGetValue(name, out var file)
        ? file.Load(name)
        : throw new KeyNotFoundException($"{Directory}: checkpoint has no tensor '{name}'");

    public IReadOnlyDictionary<string, string> Metadata =>
        _files.SelectMany(f => f.Metadata).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.First().Value);

    public void Dispose()
    {
        foreach (var file in _files)
            file.Dispose();
        _files.Clear();
        _byTensor.Clear();
    }

    private void Add(SafeTensorsFile file)
    {
        _files.Add(file);
        foreach (var name in file.Names)
            _byTensor[name] = file;
    }

    private void AddShards(string indexPath)
    {
        JsonObject weightMap;
        try
        {
            weightMap = JsonNode.Parse(File.ReadAllText(indexPath))?["weight_map"] as JsonObject
                        ?? throw new InvalidDataException($"{indexPath}: no 'weight_map' object");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or InvalidOperationException)
        {
            // ArgumentException: a key twice; InvalidOperationException: a root that is not an object.
            throw new InvalidDataException($"{indexPath}: not a valid index ({e.Message})");
        }
        var opened = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        foreach (var (tensor, shardNode) in weightMap)
        {
            var shard = shardNode is JsonValue value && value.TryGetValue<string>(out var name) ? name
                : throw new InvalidDataException($"{indexPath}: no shard file named for '{tensor}'");
            // Shards sit next to the index: a path ("../secret", "/etc/passwd") would read files outside the model.
            if (shard.Length == 0 || Path.GetFileName(shard) != shard || Path.IsPathRooted(shard))
                throw new InvalidDataException($"{indexPath}: shard '{shard}' for '{tensor}' is not a file name in the model folder");
            if (!opened.TryGetValue(shard, out var file))
            {
                var shardPath = Path.Combine(Directory, shard);
                if (!File.Exists(shardPath))
                    throw new FileNotFoundException($"{indexPath} names shard '{shard}', which is missing", shardPath);
                file = SafeTensorsFile.Open(shardPath);
                opened[shard] = file;
                _files.Add(file);
            }
            if (!file.Contains(tensor))
                throw new InvalidDataException($"{indexPath} places '{tensor}' in '{shard}', which does not contain it");
            _byTensor[tensor] = file;
        }
    }

    private static Exception RefuseOrMissing(string directory)
    {
        foreach (var pickle in new[] { "pytorch_model.bin", "pytorch_model.bin.index.json", "model.bin", "tf_model.h5" })
            if (File.Exists(Path.Combine(directory, pickle)))
                return new InvalidDataException(
                    $"{Path.Combine(directory, pickle)}: SharpTune reads safetensors only (pickle checkpoints can run arbitrary code). " +
                    "Convert it in Python with: AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)");
        return new FileNotFoundException($"{directory}: no {SingleFile} or {IndexFile}", Path.Combine(directory, SingleFile));
    }
}

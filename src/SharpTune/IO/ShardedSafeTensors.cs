using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SharpTune.IO;

/// <summary>Saves weights as one <c>model.safetensors</c>, or as shards plus <c>model.safetensors.index.json</c>
/// when they exceed the shard size, with the same file names and index layout as transformers.</summary>
public static class ShardedSafeTensors
{
    public static void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, long maxShardBytes)
    {
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var entry in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var bytes = entry.Value.NumberOfElements * entry.Value.ElementSize;
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(entry);
            current += bytes;
            total += bytes;
        }
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        // Drop weights of an earlier save so a directory never mixes layouts.
        foreach (var stale in Directory.EnumerateFiles(directory, "model*.safetensors*"))
            File.Delete(stale);
        if (shards.Count == 1)
        {
            SafeTensorsWriter.Save(Path.Combine(directory, Checkpoint.SingleFile), shards[0], metadata);
            return;
        }
        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensorsWriter.Save(Path.Combine(directory, file), shards[i], metadata);
            foreach (var (name, _) in shards[i])
                weightMap[name] = file;
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        AtomicFile.WriteAllText(Path.Combine(directory, Checkpoint.IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}

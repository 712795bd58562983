using System.Text.Json.Nodes;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hardening;

/// <summary>Malformed PEFT adapters (given to <c>sharptune merge</c>) and llama2.c checkpoints (to <c>convert --from llama2c</c>).</summary>
public sealed class MalformedAdapterAndLlama2cTests : MalformedInputSuite
{
    private static readonly string Base = RepoPaths.Fixture("lora", "llama", "base");
    private static readonly string Adapter = RepoPaths.Fixture("lora", "llama", "adapter");
    private static readonly string Llama2c = Path.Combine(RepoPaths.Models, "stories260K", "llama2c");

    /// <summary>The fixture adapter with its config edited (or replaced) and its weights replaced when given; merged into the base.</summary>
    private static Func<string, string, string[]> Merge(Action<JsonObject>? edit, string? rawConfig = null, Func<byte[], byte[]>? weights = null) => (folder, output) =>
    {
        var adapter = Path.Combine(folder, "adapter");
        Directory.CreateDirectory(adapter);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Adapter, "adapter_config.json")))!.AsObject();
        edit?.Invoke(config);
        Write(adapter, "adapter_config.json", rawConfig ?? config.ToJsonString());
        var bytes = File.ReadAllBytes(Path.Combine(Adapter, "adapter_model.safetensors"));
        Write(adapter, "adapter_model.safetensors", weights is null ? bytes : weights(bytes));
        return ["merge", "--model", Base, "--adapter", adapter, "--output", output];
    };

    /// <summary>The stories260K llama2.c checkpoint changed by <paramref name="edit"/>, imported with its tokenizer.</summary>
    private static Func<string, string, string[]> Import(Func<byte[], byte[]> edit, Func<byte[], byte[]>? tokenizer = null) => (folder, output) =>
    {
        var model = Write(folder, "model.bin", edit(File.ReadAllBytes(Path.Combine(Llama2c, "stories260K.bin"))));
        var vocabulary = Write(folder, "tok.bin", (tokenizer ?? (b => b))(File.ReadAllBytes(Path.Combine(Llama2c, "tok512.bin"))));
        return ["convert", "--from", "llama2c", "--model", model, "--tokenizer", vocabulary, "--output", output];
    };

    private static byte[] Header(byte[] bytes, int index, int value)
    {
        var copy = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(copy.AsSpan(index * 4, 4), value);
        return copy;
    }

    public static readonly MalformedCase[] Cases =
    [
        new("adapter-config-not-json", Merge(null, "{\"r\": 8,"), "adapter_config.json", "invalid JSON"),
        new("adapter-rank-1e9", Merge(c => c["r"] = 1000000000), "adapter_config.json", "r must be between 1 and 65536"),
        new("adapter-rank-zero", Merge(c => c["r"] = 0), "adapter_config.json", "r must be between"),
        new("adapter-rank-string", Merge(c => c["r"] = "eight"), "adapter_config.json", "wrong type"),
        new("adapter-targets-number", Merge(c => c["target_modules"] = 5), "adapter_config.json", "wrong type"),
        new("adapter-weights-truncated", Merge(null, weights: b => b[..(b.Length / 2)]), "adapter_model.safetensors", "outside the data section"),
        new("adapter-weights-garbage", Merge(null, weights: _ => [9, 9, 9]), "adapter_model.safetensors", "not a safetensors file"),
        new("llama2c-truncated", Import(b => b[..100_000]), "model.bin", "implies a file of 1,056,540 bytes", "100,000"),
        new("llama2c-dim-1e9", Import(b => Header(b, 0, 1_000_000_000)), "model.bin", "llama2.c header", "dim 1000000000"),
        new("llama2c-layers-huge", Import(b => Header(b, 2, int.MaxValue)), "model.bin", "llama2.c header"),
        new("llama2c-negative-heads", Import(b => Header(b, 3, -8)), "model.bin", "not a llama2.c checkpoint"),
        new("llama2c-three-bytes", Import(_ => [1, 2, 3]), "model.bin", "too short"),
        new("llama2c-tokenizer-truncated", Import(b => b, t => t[..1000]), "tok.bin", "truncated or corrupt"),
    ];

    public static TheoryData<string> CaseNames => Names(Cases);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EndsWithOneClearLine(string name) => Check(Cases.Single(c => c.Name == name));
}

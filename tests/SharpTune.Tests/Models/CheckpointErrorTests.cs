using System.Text;
using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Models;

/// <summary>Broken model directories fail with an exception naming the problem and the file, never a crash.</summary>
public sealed class CheckpointErrorTests : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A copy of the bert-seqcls fixture (config + weights) to break.</summary>
    private string CopyFixture()
    {
        foreach (var file in new[] { "config.json", Checkpoint.SingleFile })
            File.Copy(Path.Combine(EncoderFixture.Directory("bert-seqcls"), file), Path.Combine(_directory, file));
        return Path.Combine(_directory, Checkpoint.SingleFile);
    }

    private static (long HeaderLength, JsonObject Header) ReadHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = BitConverter.ToInt64(bytes, 0);
        return (length, JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)length))!.AsObject());
    }

    /// <summary>Rewrites the header in place, padded to its original length so data offsets keep their meaning.</summary>
    private static void WriteHeader(string path, long headerLength, JsonObject header)
    {
        var text = Encoding.UTF8.GetBytes(header.ToJsonString());
        Assert.True(text.Length <= headerLength);
        using var stream = File.OpenWrite(path);
        stream.Position = 8;
        stream.Write(text);
        for (var i = text.Length; i < headerLength; i++)
            stream.WriteByte((byte)' ');
    }

    private T LoadFails<T>() where T : Exception => Assert.Throws<T>(() => AutoModel.FromPretrained(_directory).Dispose());

    [Fact]
    public void TruncatedWeightsFile()
    {
        var path = CopyFixture();
        using (var stream = File.OpenWrite(path))
            stream.SetLength(stream.Length - 1000);
        var error = LoadFails<InvalidDataException>();
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void HeaderThatIsNotJson()
    {
        var path = CopyFixture();
        var (length, _) = ReadHeader(path);
        using (var stream = File.OpenWrite(path))
        {
            stream.Position = 8;
            stream.Write(Encoding.UTF8.GetBytes("{not json" + new string(' ', (int)length - 9)));
        }
        var error = LoadFails<InvalidDataException>();
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void HeaderLengthBeyondTheFile()
    {
        var path = CopyFixture();
        using (var stream = File.OpenWrite(path))
            stream.Write(BitConverter.GetBytes(long.MaxValue / 2));
        var error = LoadFails<InvalidDataException>();
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void OverlappingTensorOffsets()
    {
        var path = CopyFixture();
        var (length, header) = ReadHeader(path);
        var first = header["classifier.bias"]!["data_offsets"]!.AsArray();
        var second = header["classifier.weight"]!;
        // Point the weight's range at the bias' start: same size, overlapping bytes.
        var size = second["data_offsets"]![1]!.GetValue<long>() - second["data_offsets"]![0]!.GetValue<long>();
        var start = first[0]!.GetValue<long>();
        second["data_offsets"] = new JsonArray(start, start + size);
        WriteHeader(path, length, header);
        var error = LoadFails<InvalidDataException>();
        Assert.Contains("overlap", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void UnknownDtype()
    {
        var path = CopyFixture();
        var (length, header) = ReadHeader(path);
        header["classifier.bias"]!["dtype"] = "F8_E9";
        WriteHeader(path, length, header);
        var error = LoadFails<InvalidDataException>();
        Assert.Contains("F8_E9", error.Message);
    }

    [Fact]
    public void WrongShapeInTheCheckpoint()
    {
        CopyFixture();
        var config = PretrainedConfig.FromDirectory(_directory);
        config.Set("intermediate_size", 96);
        config.Save(_directory);
        var error = LoadFails<InvalidDataException>();
        Assert.Contains("bert.encoder.layer.0.intermediate.dense.weight", error.Message);
        Assert.Contains("[128, 64]", error.Message);
        Assert.Contains("[96, 64]", error.Message);
    }

    [Fact]
    public void MissingShard()
    {
        using (var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-seqcls")))
            model.SavePretrained(_directory, maxShardBytes: 40_000);
        var shard = Directory.GetFiles(_directory, "model-*-of-*.safetensors").Order().Last();
        File.Delete(shard);
        var error = LoadFails<FileNotFoundException>();
        Assert.Contains(Path.GetFileName(shard), error.Message);
    }

    [Fact]
    public void PickleCheckpointIsRefusedWithAConversionHint()
    {
        File.Copy(Path.Combine(EncoderFixture.Directory("bert-seqcls"), "config.json"), Path.Combine(_directory, "config.json"));
        File.WriteAllBytes(Path.Combine(_directory, "pytorch_model.bin"), [0x80, 0x02]);
        var error = LoadFails<InvalidDataException>();
        Assert.Contains("pytorch_model.bin", error.Message);
        Assert.Contains("safe_serialization=True", error.Message);
    }

    [Fact]
    public void UnknownArchitectureListsTheSupportedOnes()
    {
        CopyFixture();
        var config = PretrainedConfig.FromDirectory(_directory);
        config.Set("model_type", "mystery");
        config.Set("architectures", new JsonArray("MysteryForMagic"));
        config.Save(_directory);
        var error = LoadFails<NotSupportedException>();
        Assert.Contains("MysteryForMagic", error.Message);
        Assert.Contains("DebertaV2ForSequenceClassification", error.Message);
    }
}

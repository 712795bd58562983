using System.Text.Json.Nodes;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tokenizers;
using static TorchSharp.torch;

namespace SharpTune.StagedPipeline;

/// <summary>The files of a Hugging Face model folder besides config and weights, and helpers the stages share.</summary>
public static class ModelFolder
{
    private static readonly System.Text.Json.JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>Tokenizer files a Hugging Face model folder may hold (all copied along with the model).</summary>
    public static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja"];

    /// <summary>Copies the tokenizer files and <c>generation_config.json</c> (written from config.json's special token
    /// ids when the source has none) so that <paramref name="target"/> is a complete model folder.</summary>
    public static void CopyCompanionFiles(string source, string target, PretrainedConfig config)
    {
        Directory.CreateDirectory(target);
        foreach (var name in TokenizerFiles.Append(GenerationConfig.FileName))
            if (File.Exists(Path.Combine(source, name)))
                File.Copy(Path.Combine(source, name), Path.Combine(target, name), overwrite: true);
        if (!File.Exists(Path.Combine(target, GenerationConfig.FileName)))
        {
            var generation = new JsonObject { ["_from_model_config"] = true };
            foreach (var key in new[] { "bos_token_id", "eos_token_id", "pad_token_id" })
                if (config.Raw[key] is { } value)
                    generation[key] = value.DeepClone();
            AtomicFile.WriteAllText(Path.Combine(target, GenerationConfig.FileName), generation.ToJsonString(IndentedJson));
        }
    }

    /// <summary>Bytes of the weight files (*.safetensors) in a folder and its subfolders.</summary>
    public static long WeightBytes(string directory) =>
        Directory.EnumerateFiles(directory, "*.safetensors", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    /// <summary>Bytes of every file in a folder (hidden bookkeeping files excepted).</summary>
    public static long FolderBytes(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith('.')).Sum(f => new FileInfo(f).Length);

    /// <summary>Loads a causal LM (full-precision or quantized checkpoint) from a model folder.</summary>
    public static PreTrainedModel LoadCausalLM(string directory, Device device, ScalarType? dtype = null) =>
        AutoModel.FromPretrained(directory, ModelTask.CausalLM, device, dtype);
}

using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tests.Support;
using SharpTune.Tokenizers.ChatTemplates;
using SharpTune.Training;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>SftTrainer and DpoTrainer on stories260K with the chat demo's template and data (data/chat-demo).</summary>
public sealed class ChatTuningTests : IDisposable
{
    private static readonly string Model = Path.Combine(RepoPaths.Models, "stories260K");
    private static readonly string Demo = Path.Combine(RepoPaths.Data, "chat-demo");
    private readonly string _directory = RepoPaths.NewTempDirectory("sharptune-chat");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static PretrainedInstructionTokenizer Tokenizer(string? template = null) =>
        PretrainedInstructionTokenizer.FromPretrained(Model, template ?? Path.Combine(Demo, "chat_template.jinja"));

    private TrainingArguments Args(long steps, double lr) => new()
    {
        OutputDir = _directory,
        MaxSteps = steps,
        PerDeviceTrainBatchSize = 4,
        PerDeviceEvalBatchSize = 8,
        LearningRate = lr,
        LoggingSteps = 1,
        Seed = 3,
    };

    [Fact]
    public void SftLabelsCoverExactlyTheAssistantTokensOfTheGenerationMask()
    {
        var tokenizer = Tokenizer();
        Assert.True(tokenizer.ChatTemplate!.HasGenerationBlocks());
        // The same template without its {% generation %} tags: the mask then comes from rendering conversation prefixes.
        var plainPath = Path.Combine(_directory, "plain.jinja");
        File.WriteAllText(plainPath, Regex.Replace(File.ReadAllText(Path.Combine(Demo, "chat_template.jinja")), @"\{%-?\s*(end)?generation\s*-?%\}", ""));
        var plain = Tokenizer(plainPath);
        Assert.False(plain.ChatTemplate!.HasGenerationBlocks());

        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You tell short stories." },
            new JsonObject { ["role"] = "user", ["content"] = "Continue the story: Tom had a red ball." },
            new JsonObject { ["role"] = "assistant", ["content"] = "He threw it to his dog. The dog ran fast." },
            new JsonObject { ["role"] = "user", ["content"] = "And then?" },
            new JsonObject { ["role"] = "assistant", ["content"] = "They played all day." });
        var (ids, mask) = SftTrainer.AssistantMask(tokenizer, messages);
        var (plainIds, plainMask) = SftTrainer.AssistantMask(plain, messages);
        Assert.Equal(ids, plainIds);
        Assert.Equal(mask, plainMask);

        // The masked tokens are the two assistant turns, each ending with the end-of-sequence token.
        var eos = tokenizer.EosTokenId;
        var masked = ids.Where((_, i) => mask[i]).ToList();
        Assert.Equal(2, masked.Count(id => id == eos));
        Assert.Equal(masked.Count, ids.Where((_, i) => mask[i]).Count());
        var decodedTurns = string.Join("|", SplitRuns(ids, mask).Select(run => tokenizer.Decode(run.Select(i => (int)i)).Replace("</s>", "").Trim()));
        Assert.Equal("He threw it to his dog. The dog ran fast.|They played all day.", decodedTurns);

        var example = SftTrainer.ToExample(tokenizer, new SftRecord { Messages = messages }, new SftConfig());
        Assert.Equal(ids, example.InputIds);
        Assert.Equal(ids.Select((id, i) => mask[i] ? id : InstructionExample.IgnoreIndex), example.TokenLabels!);
        var everything = SftTrainer.ToExample(tokenizer, new SftRecord { Messages = messages }, new SftConfig { CompletionOnlyLoss = false });
        Assert.Equal(ids, everything.TokenLabels!);
    }

    private static IEnumerable<List<long>> SplitRuns(long[] ids, bool[] mask)
    {
        var run = new List<long>();
        for (var i = 0; i <= ids.Length; i++)
        {
            if (i < ids.Length && mask[i])
                run.Add(ids[i]);
            else if (run.Count > 0)
            {
                yield return run;
                run = [];
            }
        }
    }

    [Fact]
    public void PackingKeepsEveryTokenAndLabel()
    {
        var tokenizer = Tokenizer();
        var records = SftDataset.Load(Path.Combine(Demo, "sft_eval.jsonl")).Take(10).ToList();
        var examples = records.Select(r => SftTrainer.ToExample(tokenizer, r, new SftConfig())).ToList();
        var packed = SftTrainer.Pack(examples, 64);
        Assert.All(packed.SkipLast(1), e => Assert.Equal(64, e.Length));
        Assert.Equal(examples.SelectMany(e => e.InputIds), packed.SelectMany(e => e.InputIds));
        Assert.Equal(examples.SelectMany(e => e.TokenLabels!), packed.SelectMany(e => e.TokenLabels!));
    }

    [Fact]
    public void SftHeldOutLossFallsOnTheDemo()
    {
        var train = SftDataset.Load(Path.Combine(Demo, "sft_train.jsonl")).Take(64).ToList();
        var eval = SftDataset.Load(Path.Combine(Demo, "sft_eval.jsonl")).Take(16).ToList();
        using var model = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        var sft = new SftTrainer(model, Args(16, 1e-3), Tokenizer(), train, eval);
        var before = sft.EvaluateLoss();
        sft.Train();
        var after = sft.EvaluateLoss();
        Assert.True(after < before - 0.02, $"held-out loss {before:F4} -> {after:F4}");
    }

    [Theory]
    [InlineData(DpoLossType.Sigmoid, 0.0)]
    [InlineData(DpoLossType.Sigmoid, 0.2)]
    [InlineData(DpoLossType.Ipo, 0.0)]
    [InlineData(DpoLossType.Hinge, 0.0)]
    public void DpoLossesEqualTheirFormulas(DpoLossType type, double smoothing)
    {
        double[] pc = [-10.5, -3.25, -40.0, -7.0], pr = [-12.0, -3.0, -35.5, -7.0], rc = [-11.0, -3.5, -38.0, -6.5], rr = [-11.5, -2.75, -36.0, -7.25];
        const double beta = 0.3;
        using var loss = DpoTrainer.Loss(type, beta, smoothing, tensor(pc), tensor(pr), tensor(rc), tensor(rr));
        var actual = loss.data<double>().ToArray();
        static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));
        for (var i = 0; i < pc.Length; i++)
        {
            var h = pc[i] - pr[i] - (rc[i] - rr[i]);
            var expected = type switch
            {
                DpoLossType.Sigmoid => -(1 - smoothing) * LogSigmoid(beta * h) - smoothing * LogSigmoid(-beta * h),
                DpoLossType.Ipo => Math.Pow(h - 1 / (2 * beta), 2),
                _ => Math.Max(0, 1 - beta * h),
            };
            Assert.Equal(expected, actual[i], 1e-12);
        }
    }

    [Fact]
    public void DpoStepZeroIsLn2WithZeroRewardsAndLoraReferenceIsTheBaseModel()
    {
        var pairs = PreferenceRecord.Load(Path.Combine(Demo, "dpo_train.jsonl")).Take(8).ToList();
        var tokenizer = Tokenizer();
        using var model = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        var lora = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"] };
        var dpo = new DpoTrainer(model, null, Args(3, 5e-3), tokenizer, pairs, config: new DpoConfig { Beta = 0.1, LogFirstStep = true, Lora = lora });
        dpo.Train();

        var first = dpo.LogHistory[0];
        Assert.Equal(0, first["step"]);
        Assert.Equal(Math.Log(2), first["loss"], 1e-5);
        Assert.Equal(0, first["rewards/chosen"], 1e-6);
        Assert.Equal(0, first["rewards/rejected"], 1e-6);
        Assert.Equal(0, first["rewards/margins"], 1e-6);
        var log = File.ReadAllLines(Path.Combine(_directory, TrainingLogWriter.LogFileName));
        Assert.Equal(4, log.Length);
        foreach (var key in new[] { "\"step\":0", "\"loss\"", "\"rewards/accuracies\"", "\"logps/chosen\"", "\"logps/rejected\"" })
            Assert.Contains(key, log[0]);

        // Trained: the policy moved, the reference (adapter disabled) did not — it equals a fresh base model's log-probs.
        var (policyChosen, _) = dpo.LogProbs(dpo.TrainDataset, reference: false);
        var (referenceChosen, referenceRejected) = dpo.LogProbs(dpo.TrainDataset, reference: true);
        Assert.NotEqual(policyChosen, referenceChosen);
        using var fresh = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        using var freshReference = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        var baseline = new DpoTrainer(fresh, freshReference, Args(1, 1e-3), tokenizer, pairs, config: new DpoConfig());
        var (baseChosen, baseRejected) = baseline.LogProbs(baseline.TrainDataset, reference: false);
        for (var i = 0; i < pairs.Count; i++)
        {
            Assert.Equal(baseChosen[i], referenceChosen[i], 1e-4);
            Assert.Equal(baseRejected[i], referenceRejected[i], 1e-4);
        }
    }

    [Fact]
    public void DpoWithAReferenceCopyStartsAtLn2()
    {
        var pairs = PreferenceRecord.Load(Path.Combine(Demo, "dpo_eval.jsonl")).Take(6).ToList();
        using var model = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        using var reference = AutoModel.FromPretrained(Model, ModelTask.CausalLM, CPU);
        var dpo = new DpoTrainer(model, reference, Args(1, 1e-3), Tokenizer(), pairs, pairs, new DpoConfig { LossType = DpoLossType.Sigmoid });
        var metrics = dpo.Evaluate();
        Assert.Equal(Math.Log(2), metrics["eval_loss"], 1e-5);
        Assert.Equal(0, metrics["eval_rewards/chosen"], 1e-6);
        Assert.Equal(0, metrics["eval_rewards/accuracies"], 1e-6);
    }

    [Fact]
    public void ChatTemplateCommandPrintsExactlyTheRendering()
    {
        var folder = Path.Combine(_directory, "tok");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Model, "tokenizer_config.json"), Path.Combine(folder, "tokenizer_config.json"));
        File.Copy(Path.Combine(Demo, "chat_template.jinja"), Path.Combine(folder, "chat_template.jinja"));
        var messages = Path.Combine(_directory, "messages.json");
        File.WriteAllText(messages, """[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]""");
        var result = CliRunner.Run("chat-template", "--tokenizer", folder, "--messages", messages, "--add-generation-prompt");
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Equal("User: Hi\nAssistant: Hello.</s>\nUser: Bye\nAssistant:", result.StdOut);

        var bad = CliRunner.Run("chat-template", "--tokenizer", folder, "--messages", messages, "--var", "x=notjson");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--var x", bad.StdErr);
    }

    [Fact]
    public void TokenizeAndGenerateWithChat()
    {
        var folder = Path.Combine(_directory, "model");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(Model))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        File.Copy(Path.Combine(Demo, "chat_template.jinja"), Path.Combine(folder, "chat_template.jinja"));
        var messages = """[{"role": "user", "content": "Continue the story: Tom had a ball."}]""";
        var input = Path.Combine(_directory, "chats.jsonl");
        File.WriteAllText(input, $"{{\"messages\": {messages}}}\n");
        var output = Path.Combine(_directory, "tokens.jsonl");
        var tokenized = CliRunner.Run("tokenize", "--tokenizer", folder, "--input", input, "--output", output, "--chat", "--add-generation-prompt");
        Assert.True(tokenized.ExitCode == 0, tokenized.All);
        var tokenizer = PretrainedInstructionTokenizer.FromPretrained(folder);
        var rendered = tokenizer.ChatTemplate!.ApplyChatTemplate(JsonNode.Parse(messages)!.AsArray(), new ChatTemplateOptions { AddGenerationPrompt = true });
        Assert.Equal("User: Continue the story: Tom had a ball.\nAssistant:", rendered);
        var ids = JsonNode.Parse(File.ReadAllLines(output)[0])!["ids"]!.AsArray().Select(n => n!.GetValue<int>());
        Assert.Equal(tokenizer.EncodeRendered(rendered).Ids, ids);

        var conversation = Path.Combine(_directory, "conversation.json");
        File.WriteAllText(conversation, messages);
        var generated = CliRunner.Run("generate", "--model", folder, "--chat", "--messages", conversation, "--max-new-tokens", "4", "--greedy");
        Assert.True(generated.ExitCode == 0, generated.All);
        Assert.Contains("4 tokens", generated.StdErr);
    }
}
